//! What the engine needs from the page it runs in: to give the event loop back now and then, so
//! the tab never freezes, and to tell the page how the work goes.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Let the page draw and handle its events, then go on: a `setTimeout(…, 0)` awaited. The
/// read-backs already yield while the GPU works; this is for the CPU's own long work
/// (decoding a folder of images, the transforms of a batch).
pub async fn yield_to_page() {
    let promise = Promise::new(&mut |resolve, _reject| {
        let global = js_sys::global();
        let set_timeout = Reflect::get(&global, &JsValue::from_str("setTimeout")).ok().and_then(|f| f.dyn_into::<Function>().ok());
        match set_timeout {
            Some(f) => drop(f.call2(&global, &resolve, &JsValue::from(0))),
            None => drop(resolve.call0(&JsValue::NULL)),
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Give the page a JSON report (progress, a row of the check): `report(json)`. A failing
/// callback is the page's own bug; the work goes on.
pub fn report(callback: &Function, json: &serde_json::Value) {
    let _ = callback.call1(&JsValue::NULL, &JsValue::from_str(&json.to_string()));
}

/// The library's error as the page shows it: a setting named as the page names it, which is
/// the flag's name without `--` (`img_size` → `img-size`), as the CLI names it by its flag.
pub fn error_to_js(e: vpt_wgsl::Error) -> JsValue {
    let text = match e {
        vpt_wgsl::Error::Invalid { what, msg } => format!("{}: {msg}", page_name(&what)),
        other => other.to_string(),
    };
    JsValue::from_str(&in_page_words(&text))
}

/// A message of the library's with each setting it names in backticks as the page names it.
pub fn in_page_words(text: &str) -> String {
    let mut text = text.to_string();
    for (name, _) in vpt_wgsl::train::recipe::RECIPE_SETTINGS {
        text = text.replace(&format!("`{}`", name.replace('-', "_")), &format!("`{name}`"));
    }
    text
}

/// A setting's name on the page: the name of its flag, without `--`.
fn page_name(setting: &str) -> String {
    setting.replace('_', "-")
}
