//! One error type for the whole crate.
//!
//! Every message says what was wrong and, where we know it, how to fix it: an op error names the op
//! and the shapes it was given, a missing adapter names the package to install, a setting is
//! named by its name in backticks (`lr`; see [`setting`]), which the command line shows as its
//! flag.

use std::fmt;

/// The crate's `Result`.
pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug)]
pub enum Error {
    /// No GPU adapter matched the requested backends (`WGPU_BACKEND`).
    NoAdapter { backends: String },
    /// `WGPU_ADAPTER_NAME` was set but no adapter's name contains it.
    AdapterNotFound { wanted: String, available: Vec<String> },
    /// The adapter refused to give us a device.
    Device(String),
    /// An op was called with shapes it cannot work on.
    Shape { op: &'static str, msg: String },
    /// A setting, argument or environment variable with a value that cannot be used (`what` names
    /// it: the setting `lr`, `WGPU_BACKEND`, `adamw_step`'s step...), and what would do.
    Invalid { what: String, msg: String },
    /// Something that should not happen whatever the input: a bug in vpt-wgsl, or the system
    /// refusing what it normally gives (a thread).
    Internal { what: String, msg: String },
    /// The user stopped a run (Ctrl-C); `msg` says what was kept and how to continue.
    Interrupted { msg: String },
    /// A buffer larger than the adapter can bind in one storage binding.
    TooLarge { what: String, bytes: u64, limit: u64 },
    /// wgpu reported a validation, out-of-memory or internal error inside an op.
    Gpu { op: String, msg: String },
    /// Reading or writing a file.
    Io { path: String, source: std::io::Error },
    /// A file whose contents are not what we expected (safetensors layout, dtype, missing tensor).
    Format { path: String, msg: String },
}

impl Error {
    /// Shorthand used by every op's shape checks.
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Error {
        Error::Shape { op, msg: msg.into() }
    }
    /// Shorthand for a value the user (or a caller) gave that cannot be used.
    pub fn invalid(what: impl Into<String>, msg: impl Into<String>) -> Error {
        Error::Invalid { what: what.into(), msg: msg.into() }
    }
}

/// A setting as messages name it, in backticks: `lr`, `out`, `img_size`. The library knows its
/// settings by these names and never by a flag; the command line shows each as the flag that sets
/// it (`lr` → --lr, in `src/cli/flags.rs`). A phrase that already names its settings in
/// backticks ("`out` (its resume state)") is kept as it is.
pub fn setting(name: &str) -> String {
    if name.contains('`') {
        name.to_string()
    } else {
        format!("`{name}`")
    }
}

/// How to get a software GPU on the machine we run on; printed with every "no adapter" error.
pub fn install_hint() -> &'static str {
    if cfg!(target_os = "linux") {
        "install Mesa's software Vulkan driver (lavapipe): `sudo apt-get update && sudo apt-get install -y mesa-vulkan-drivers`, \
         or a GPU driver with Vulkan or OpenGL ES 3.1 support; unset WGPU_BACKEND or set it to `vulkan` or `gl`"
    } else if cfg!(target_os = "macos") {
        "Metal is built into macOS 10.13+; unset WGPU_BACKEND or set it to `metal`"
    } else if cfg!(target_os = "windows") {
        "install your GPU vendor's driver (DX12 or Vulkan), or use the WARP software adapter; unset WGPU_BACKEND or set it to `dx12` or `vulkan`"
    } else {
        "install a Vulkan or OpenGL ES 3.1 driver for your GPU"
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoAdapter { backends } => write!(f, "no GPU adapter found for backends [{backends}]: {}", install_hint()),
            Error::AdapterNotFound { wanted, available } => write!(f, "WGPU_ADAPTER_NAME={wanted:?} matches no adapter; available: [{}] (run `vpt info` to list them)", available.join(", ")),
            Error::Device(msg) => write!(f, "could not open the GPU device: {msg}"),
            Error::Shape { op, msg } => write!(f, "{op}: {msg}"),
            Error::Invalid { what, msg } => write!(f, "{what}: {msg}"),
            Error::Interrupted { msg } => write!(f, "interrupted: {msg}"),
            Error::Internal { what, msg } => write!(f, "{what}: {msg} (an internal error: please report it)"),
            Error::TooLarge { what, bytes, limit } => write!(
                f,
                "{what} needs {bytes} bytes but this adapter binds at most {limit} bytes per storage buffer; \
                 use a smaller batch or model, or an adapter with a larger max_storage_buffer_binding_size (see `vpt info`)"
            ),
            Error::Gpu { op, msg } => write!(f, "{op}: GPU error: {msg}"),
            Error::Io { path, source } => write!(f, "{}: {source}", shown(path)),
            Error::Format { path, msg } => write!(f, "{}: {msg}", shown(path)),
        }
    }
}

/// A path as an error shows it: as given, or `""` when empty (so the message still says which).
fn shown(path: &str) -> &str {
    if path.is_empty() {
        "\"\" (an empty path)"
    } else {
        path
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
