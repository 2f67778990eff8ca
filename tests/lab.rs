//! The recorder behind `vpt record` and the server behind `vpt lab`, without a browser
//! (`tests/browser.rs` replays the traces in headless Chromium).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vpt_wgsl::gpu::{Access, TraceOp};
use vpt_wgsl::kernels::matmul::{matmul_forward, MatmulOptions};
use vpt_wgsl::lab::{read_trace_file, server};
use vpt_wgsl::{Gpu, Tensor};

fn gpu() -> Gpu {
    Gpu::new().expect("no GPU adapter found; on Debian/Ubuntu: sudo apt-get install -y mesa-vulkan-drivers libegl1 libegl-mesa0")
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vpt-lab-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A product [2, 3]·[3, 5] records its two uploads, its output (and the small stand-ins the
/// launcher binds where it has no bias), one launch binding them, and the read-back with the
/// bytes the engine got — in that order, nothing else.
#[test]
fn a_trace_holds_every_op_in_order_with_its_bytes() {
    let gpu = gpu();
    let a_values: Vec<f32> = (0..6).map(|i| i as f32 * 0.5 - 1.0).collect();
    let b_values: Vec<f32> = (0..15).map(|i| (i as f32).sin()).collect();
    gpu.start_trace();
    let a = Tensor::from_slice(&gpu, &[2, 3], &a_values).unwrap();
    let b = Tensor::from_slice(&gpu, &[3, 5], &b_values).unwrap();
    let c = matmul_forward(&a, &b, None, MatmulOptions::default()).unwrap();
    let got = c.to_vec().unwrap();
    gpu.label_last_read("c");
    let trace = gpu.take_trace().unwrap().expect("a trace was recording");
    assert!(gpu.take_trace().unwrap().is_none(), "taking the trace stops the recording");

    let blob = |r: &vpt_wgsl::gpu::BlobRange| trace.blob[r.offset as usize..(r.offset + r.len) as usize].to_vec();
    let kinds: Vec<&str> = trace
        .ops
        .iter()
        .map(|op| match op {
            TraceOp::Create { .. } => "create",
            TraceOp::Dispatch { .. } => "dispatch",
            TraceOp::Copy { .. } => "copy",
            TraceOp::Read { .. } => "read",
        })
        .collect();
    let creates = kinds.iter().take_while(|&&k| k == "create").count();
    assert!(creates >= 3, "{:?}", trace.ops);
    assert_eq!(kinds[creates..], ["dispatch", "read"], "{:?}", trace.ops);
    let ids: Vec<u64> = trace.ops[..3]
        .iter()
        .map(|op| match op {
            TraceOp::Create { id, .. } => *id,
            _ => unreachable!(),
        })
        .collect();
    let TraceOp::Create { data: Some(a_data), bytes: 24, .. } = &trace.ops[0] else { panic!("a is uploaded: {:?}", trace.ops[0]) };
    assert_eq!(blob(a_data), bytemuck::cast_slice::<f32, u8>(&a_values));
    let TraceOp::Create { data: Some(b_data), .. } = &trace.ops[1] else { panic!("b is uploaded") };
    assert_eq!(blob(b_data), bytemuck::cast_slice::<f32, u8>(&b_values));
    let TraceOp::Create { data: None, bytes: 40, .. } = &trace.ops[2] else { panic!("c starts as zeros: {:?}", trace.ops[2]) };
    let TraceOp::Dispatch { kernel, shader, bindings, params, param_names, .. } = &trace.ops[creates] else { unreachable!() };
    assert!(kernel.starts_with("matmul::"), "{kernel}");
    assert_eq!(trace.shaders[*shader].source, vpt_wgsl::kernels::matmul::SHADER.source, "the source as compiled, shared files included");
    assert!(bindings.contains(&(1, ids[0], Access::Read)) && bindings.contains(&(2, ids[1], Access::Read)), "A and B by their ids: {bindings:?}");
    assert!(bindings.iter().any(|&(_, id, access)| id == ids[2] && access == Access::ReadWrite), "C written: {bindings:?}");
    assert_eq!(&param_names[..3], ["M", "N", "K"]);
    assert_eq!(&params[..12], [2u32, 5, 3].map(u32::to_le_bytes).concat());
    let TraceOp::Read { id, data, label, .. } = &trace.ops[creates + 1] else { unreachable!() };
    assert_eq!(*id, ids[2]);
    assert_eq!(label.as_deref(), Some("c"));
    assert_eq!(blob(data), bytemuck::cast_slice::<f32, u8>(&got), "the recorded read-back is what the engine got");
}

/// `vpt lab --traces` reads back what was written, and names the file when it is not a trace.
#[test]
fn trace_files_round_trip_and_bad_ones_are_named() {
    let gpu = gpu();
    gpu.start_trace();
    Tensor::from_slice(&gpu, &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap().to_vec().unwrap();
    let bytes = gpu.take_trace().unwrap().unwrap().to_file_bytes("test", &gpu.describe());
    let dir = temp_dir("files");
    let good = dir.join("good.trace");
    std::fs::write(&good, &bytes).unwrap();
    let (name, read) = read_trace_file(&good).unwrap();
    assert_eq!((name.as_str(), read.len()), ("good", bytes.len()));

    for (file, contents) in [("short.trace", &b"abc"[..]), ("long.trace", &[255u8; 16][..]), ("json.trace", &[&2u64.to_le_bytes()[..], b"{x"].concat()[..])] {
        let path = dir.join(file);
        std::fs::write(&path, contents).unwrap();
        let err = read_trace_file(&path).unwrap_err().to_string();
        assert!(err.contains(file) && err.contains("not a trace"), "{err}");
    }
    let mut other = bytes.clone();
    let text = String::from_utf8_lossy(&other[8..]).into_owned();
    let at = 8 + text.find("vpt-trace 1").unwrap();
    other[at + 10] = b'9';
    std::fs::write(dir.join("v9.trace"), &other).unwrap();
    assert!(read_trace_file(&dir.join("v9.trace")).unwrap_err().to_string().contains("vpt-trace 9"));
    // Data shorter or longer than the manifest declares is refused by name, not served.
    let blob = bytes.len() - 8 - u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert!(blob >= 16, "the trace keeps the upload and the read-back");
    for (file, contents) in [("cut.trace", bytes[..bytes.len() - 4].to_vec()), ("padded.trace", [&bytes[..], &[0u8; 4]].concat())] {
        std::fs::write(dir.join(file), &contents).unwrap();
        let err = read_trace_file(&dir.join(file)).unwrap_err().to_string();
        assert!(err.contains(file) && err.contains(&format!("declares {blob} bytes of data")), "{err}");
    }
    // So is an op whose data lies outside the data.
    let mut manifest: serde_json::Value = serde_json::from_slice(&bytes[8..bytes.len() - blob]).unwrap();
    let read = manifest["ops"].as_array_mut().unwrap().iter_mut().find(|op| op["op"] == "read").unwrap();
    read["data"][0] = serde_json::json!(1 << 20);
    let json = manifest.to_string().into_bytes();
    std::fs::write(dir.join("outside.trace"), [&(json.len() as u64).to_le_bytes()[..], &json, &bytes[bytes.len() - blob..]].concat()).unwrap();
    let err = read_trace_file(&dir.join("outside.trace")).unwrap_err().to_string();
    assert!(err.contains("outside.trace") && err.contains("(\"read\") reads data [1048576,"), "{err}");
    // What would block or never end is refused by its kind, before it is opened.
    #[cfg(unix)]
    {
        let fifo = dir.join("fifo.trace");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero.trace")).unwrap();
        for file in ["fifo.trace", "zero.trace"] {
            let err = read_trace_file(&dir.join(file)).unwrap_err().to_string();
            assert!(err.contains(file) && err.contains("not a regular file"), "{err}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn http(port: u16, request: &str) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("a header") + 4;
    (String::from_utf8_lossy(&answer[..split]).into_owned(), answer[split..].to_vec())
}

/// The page, its script, the list and the traces by name; nothing else, whatever the path says.
#[test]
fn the_lab_serves_the_page_and_traces_and_nothing_else() {
    let listener = server::bind(0).unwrap();
    let port = listener.local_addr().unwrap().port();
    let traces = vec![("kernels".to_string(), b"trace bytes".to_vec())];
    let site = server::Site { traces, files: vec![server::SiteFile { path: "/train".into(), content_type: "text/html", bytes: b"page".to_vec().into() }] };
    std::thread::spawn(move || server::serve(listener, Arc::new(site)));

    let (head, body) = http(port, "GET /?run=kernels HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/html"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("replay.js"));
    let (head, body) = http(port, "GET /replay.js HTTP/1.1\r\n\r\n");
    assert!(head.contains("javascript") && String::from_utf8_lossy(&body).contains("export async function replay"), "{head}");
    let (_, body) = http(port, "GET /traces/ HTTP/1.1\r\n\r\n");
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list, serde_json::json!([{ "name": "kernels", "bytes": 11 }]));
    assert_eq!(http(port, "GET /traces/kernels.trace HTTP/1.1\r\n\r\n").1, b"trace bytes");
    assert_eq!(http(port, "GET /train?run=train HTTP/1.1\r\n\r\n").1, b"page");
    let (head, body) = http(port, "HEAD /traces/kernels.trace HTTP/1.1\r\n\r\n");
    assert!(head.contains("Content-Length: 11") && body.is_empty(), "{head}");
    for path in ["/traces/../Cargo.toml", "/traces/kernels", "/Cargo.toml", "/traces/other.trace", "//etc/passwd", "/train/", "/train/../Cargo.toml"] {
        let (head, _) = http(port, &format!("GET {path} HTTP/1.1\r\n\r\n"));
        assert!(head.starts_with("HTTP/1.1 404"), "{path}: {head}");
    }
    assert!(http(port, "POST / HTTP/1.1\r\n\r\n").0.starts_with("HTTP/1.1 405"));
    // Garbage and a request head that never ends do not stop the server.
    assert!(http(port, "\u{0}\u{1}garbage\r\n\r\n").0.starts_with("HTTP/1.1 405"));
    let mut endless = TcpStream::connect(("127.0.0.1", port)).unwrap();
    endless.write_all(&vec![b'a'; 20_000]).unwrap_or(());
    assert!(http(port, "GET / HTTP/1.1\r\n\r\n").0.starts_with("HTTP/1.1 200"));
}

/// The time the process `pid` has spent on the CPU, from /proc (Linux).
#[cfg(target_os = "linux")]
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's name (which is in parentheses): utime and stime are the 12th
    // and 13th, in clock ticks (100 per second on Linux).
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// A flood of silent connections, with the lab's open-file limit at 64: a page request is still
/// answered at once, and the server does not spin (it used to retry a failing accept in a busy
/// loop, at 100% of a core, and answer nothing).
#[cfg(target_os = "linux")]
#[test]
fn the_lab_answers_under_a_flood_of_slow_connections() {
    let dir = temp_dir("flood");
    let gpu = gpu();
    gpu.start_trace();
    Tensor::from_slice(&gpu, &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap().to_vec().unwrap();
    std::fs::write(dir.join("tiny.trace"), gpu.take_trace().unwrap().unwrap().to_file_bytes("test", &gpu.describe())).unwrap();
    let script = format!("ulimit -n 64 && exec {} lab --port 0 --traces {}", env!("CARGO_BIN_EXE_vpt"), dir.display());
    /// The lab, stopped when the test ends, however it ends (a lab left running would hold the
    /// test's output open).
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut lab = Running(Command::new("sh").args(["-c", &script]).stdout(std::process::Stdio::piped()).spawn().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(lab.0.stdout.take().unwrap()), &mut line).unwrap();
    let port: u16 = line.split("http://127.0.0.1:").nth(1).and_then(|rest| rest.split('/').next()).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {line:?}"));

    // More silent clients than the lab has slots and file handles, held open.
    // (A connection the lab's queue has no room for would block its connect for seconds: bounded.)
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let flood: Vec<TcpStream> = (0..300).filter_map(|_| TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok()).collect();
    assert!(flood.len() >= 100, "only {} connections opened", flood.len());
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_time(lab.0.id());
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).expect("the lab must still take a connection");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(b"GET /traces/ HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let waited = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_time(lab.0.id()) - before;
    drop(lab);
    drop(flood);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("tiny"), "under the flood the lab answered {answer:?} after {waited:?}");
    assert!(waited < Duration::from_secs(3), "the answer took {waited:?}");
    let wall = started.elapsed();
    assert!(spent < wall / 2, "the lab spent {spent:?} of CPU in {wall:?}: a busy loop?");
    std::fs::remove_dir_all(&dir).ok();
}

/// `vpt record`: an unknown workload is refused by name, and an existing file is not replaced
/// without --force.
#[test]
fn record_refuses_unknown_workloads_and_existing_files() {
    let dir = temp_dir("cli");
    let vpt = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_vpt")).args(args).output().unwrap();
    let out = vpt(&["record", "everything"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("\"everything\" is not a workload; use kernels or step"));
    let file = dir.join("step.trace");
    std::fs::write(&file, b"mine").unwrap();
    let out = vpt(&["record", "step", "--out", file.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--force"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    let out = vpt(&["record", "step", "--out", file.to_str().unwrap(), "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, bytes) = read_trace_file(&file).unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("\"label\":\"loss\""));
    let out = vpt(&["lab", "--traces", dir.join("nothing-here").to_str().unwrap(), "--port", "0"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("nothing-here"));
    std::fs::remove_dir_all(&dir).ok();
}
