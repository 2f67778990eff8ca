//! One fuzz input = the bytes of one file, handed to every loader that reads a file given on the
//! command line: the backbone (`StateDict::read`, then building the ViT), a task (`TaskFile::read`,
//! `VptTask::read`) and a batch (`read_batch`). Any panic is a bug; errors are fine.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vpt_wgsl::model::vit::{LoadOptions, StateDict, Vit};
use vpt_wgsl::model::files::read_batch;
use vpt_wgsl::model::vpt::VptTask;
use vpt_wgsl::train::task::TaskFile;
use vpt_wgsl::Gpu;

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new().unwrap_or_else(|e| panic!("{e}")))
}

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("vpt-fuzz-{}.safetensors", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let path = path.to_string_lossy().into_owned();
    if let Ok(sd) = StateDict::read(&path) {
        let _ = Vit::from_state_dict(gpu(), &sd, &LoadOptions::default());
    }
    let _ = TaskFile::read(gpu(), &path);
    let _ = VptTask::read(gpu(), &path);
    let _ = read_batch(gpu(), &path);
});
