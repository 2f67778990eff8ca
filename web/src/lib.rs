//! vpt-wgsl in the browser: the engine's core compiled to WebAssembly on the browser's WebGPU.
//! The pages `vpt lab` serves (`/train`, `/check`: `web/*.html`) call these functions, each
//! async (a JavaScript promise): nothing here blocks the page's thread.
//!
//! - [`train`]: a whole `vpt train` run on a dropped folder, with the CLI's settings (`train.rs`);
//! - [`classify`]: an image through the task just trained (or one loaded with [`load_task`]);
//! - [`check`]: what `vpt check` runs, on this browser's adapter (`check.rs`).
//!
//! The device is opened once per page and kept (`device`).

mod check;
mod page;
mod train;

use std::cell::RefCell;

use js_sys::{Function, Uint8Array};
use vpt_wgsl::Gpu;
use wasm_bindgen::prelude::*;

thread_local! {
    /// The page's device, opened on first use.
    static GPU: RefCell<Option<Gpu>> = const { RefCell::new(None) };
}

/// The browser's WebGPU device, opened on first use.
async fn device() -> vpt_wgsl::Result<Gpu> {
    if let Some(gpu) = GPU.with(|g| g.borrow().clone()) {
        return Ok(gpu);
    }
    let gpu = Gpu::browser().await?;
    GPU.with(|g| *g.borrow_mut() = Some(gpu.clone()));
    Ok(gpu)
}

/// "SwiftShader Device (Subzero) on BrowserWebGpu": the adapter the page runs on.
#[wasm_bindgen]
pub async fn adapter() -> Result<String, JsValue> {
    Ok(device().await.map_err(page::error_to_js)?.describe())
}

/// Train a task, as `vpt train --model BACKBONE --data ROOT` with `settings` would.
///
/// - `settings`: JSON `[[name, value], …]`, the flags' names without `--` (`train/recipe.rs`);
/// - `backbone_name`, `backbone`: the checkpoint's file name (for messages) and bytes;
/// - `root`, `paths`, `files`: the folder's name, its files' paths under it (JSON list,
///   "class/file.jpg") and their bytes (an array of `Uint8Array`, in the same order);
/// - `progress`: called with a JSON report after each step and epoch.
///
/// Resolves to `{epochs: [{epoch, loss, train_top1, val_top1, seconds}], task: Uint8Array}`.
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub async fn train(settings: String, backbone_name: String, backbone: Uint8Array, root: String, paths: String, files: js_sys::Array, progress: Function) -> Result<JsValue, JsValue> {
    let gpu = device().await.map_err(page::error_to_js)?;
    let input = train::Input::from_js(&settings, backbone_name, backbone.to_vec(), root, &paths, &files).map_err(page::error_to_js)?;
    train::run(&gpu, input, &progress).await.map_err(page::error_to_js)
}

/// The settings a recipe takes, with their defaults: JSON `[[name, default], …]`, the flags of
/// `vpt train` (the page builds its form from it).
#[wasm_bindgen]
pub fn recipe_settings() -> String {
    serde_json::to_string(vpt_wgsl::train::recipe::RECIPE_SETTINGS).expect("strings serialise")
}

/// Use a task file trained earlier (`vpt train`'s, or this page's) on a backbone, for
/// [`classify`]; resolves to its class names as JSON. A task trained on another backbone is
/// refused, as `vpt eval` refuses it.
#[wasm_bindgen]
pub async fn load_task(task_name: String, task: Uint8Array, backbone_name: String, backbone: Uint8Array) -> Result<String, JsValue> {
    let gpu = device().await.map_err(page::error_to_js)?;
    train::load_task(&gpu, &task_name, &task.to_vec(), &backbone_name, &backbone.to_vec()).map_err(page::error_to_js)
}

/// The class the task just trained gives an image (JPEG or PNG bytes; `name` for messages):
/// `{class}` as JSON.
#[wasm_bindgen]
pub async fn classify(name: String, image: Uint8Array) -> Result<String, JsValue> {
    let gpu = device().await.map_err(page::error_to_js)?;
    train::classify(&gpu, &name, &image.to_vec()).await.map_err(page::error_to_js)
}

/// Every kernel check `vpt check` runs, on this browser's adapter; `progress` gets each row as
/// JSON as it is made. Resolves to `{passed, failed, skipped, device, kernels: [row, …]}` as JSON.
#[wasm_bindgen]
pub async fn check(progress: Function) -> Result<String, JsValue> {
    let gpu = device().await.map_err(page::error_to_js)?;
    check::run(&gpu, &progress).await.map_err(page::error_to_js)
}
