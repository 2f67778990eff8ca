//! Split lists (`relative/path label` lines, as VTAB-1k is distributed) wherever an image folder
//! is taken: `vpt train --data/--val` and `vpt eval --data`, with `--root` and `classes.txt`.
//! A list of a folder's images in the folder's order trains the very task the folder trains;
//! each bad line is an error naming the list's file and line.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{image_folder, workdir, write_tiny_backbone, CLASSES};

fn vpt(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vpt")).args(args).env_remove("WGPU_BACKEND").env_remove("WGPU_ADAPTER_NAME").output().unwrap()
}

fn text(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `lines` as a list file at `path`.
fn write_list(path: &Path, lines: &[String]) -> PathBuf {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    path.to_path_buf()
}

/// "circle/000.png 0"-style lines for images `range` of each class of [`image_folder`].
fn lines_of(range: std::ops::Range<usize>) -> Vec<String> {
    CLASSES.iter().enumerate().flat_map(|(label, class)| range.clone().map(move |i| format!("{class}/{i:03}.png {label}"))).collect()
}

const RECIPE: [&str; 12] = ["--epochs", "1", "--batch", "4", "--prompts", "2", "--warmup", "0", "--lr", "1", "--seed", "5"];

/// A list of every image of a folder, in the folder's order and with its class names, trains the
/// task the folder trains, bit for bit (the same samples, so the same split, order and crops).
#[test]
fn a_list_of_a_folder_trains_what_the_folder_trains() {
    let dir = workdir("list-same");
    let model = write_tiny_backbone(&dir);
    let images = image_folder(&dir, 6);
    let list = write_list(&images.join("all.txt"), &lines_of(0..6));
    std::fs::write(images.join("classes.txt"), CLASSES.join("\n")).unwrap();
    let from_folder = dir.join("folder.safetensors");
    let from_list = dir.join("list.safetensors");
    for (data, out) in [(&images, &from_folder), (&list, &from_list)] {
        let o = vpt(&[&["train", "--model", &model, "--data", text(data), "--out", text(out)], &RECIPE[..]].concat());
        assert!(o.status.success(), "vpt train --data {}:\n{}", data.display(), String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(std::fs::read(&from_folder).unwrap(), std::fs::read(&from_list).unwrap(), "the list's task differs from the folder's");
    std::fs::remove_dir_all(&dir).ok();
}

/// VTAB-1k's layout: lists in one folder, images in another (`--root`); train on one list,
/// validate on another, evaluate a third. Without `classes.txt` the classes are the indices.
#[test]
fn lists_train_validate_and_evaluate_with_a_root() {
    let dir = workdir("list-root");
    let model = write_tiny_backbone(&dir);
    let images = image_folder(&dir, 8);
    let lists = dir.join("lists");
    std::fs::create_dir_all(&lists).unwrap();
    let train = write_list(&lists.join("train800.txt"), &lines_of(0..5));
    let val = write_list(&lists.join("val200.txt"), &lines_of(5..7));
    let test = write_list(&lists.join("test.txt"), &lines_of(7..8));
    let task = dir.join("task.safetensors");
    let o = vpt(&[&["train", "--model", &model, "--data", text(&train), "--val", text(&val), "--root", text(&images), "--out", text(&task)], &RECIPE[..]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("3 classes, 15 train / 6 val images"), "{out}");
    let f = vpt_wgsl::io::TensorFile::read(text(&task)).unwrap();
    assert_eq!(f.metadata["classes"], r#"["0","1","2"]"#, "without classes.txt the classes are the indices");

    let o = vpt(&["eval", "--model", &model, "--task", text(&task), "--data", text(&test), "--root", text(&images)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("on 3 images"), "{}", String::from_utf8_lossy(&o.stdout));

    // With classes.txt beside the lists, those are the names; a val list whose classes.txt
    // names others is refused.
    std::fs::write(lists.join("classes.txt"), CLASSES.join("\n")).unwrap();
    let named = dir.join("named.safetensors");
    let o = vpt(&[&["train", "--model", &model, "--data", text(&train), "--root", text(&images), "--out", text(&named)], &RECIPE[..]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(vpt_wgsl::io::TensorFile::read(text(&named)).unwrap().metadata["classes"], r#"["circle","cross","stripes"]"#);
    let o = vpt(&["eval", "--model", &model, "--task", text(&task), "--data", text(&test), "--root", text(&images)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("classes.txt") && err.contains("training classes"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Each bad line is an error that names the list and the line, and says what a line must be.
#[test]
fn bad_lines_are_errors_naming_the_file_and_line() {
    let dir = workdir("list-bad");
    let model = write_tiny_backbone(&dir);
    let images = image_folder(&dir, 2);
    std::fs::write(images.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let good = lines_of(0..2);
    let cases: [(&str, String, &str); 7] = [
        ("no label", "circle/000.png".into(), ":2: \"circle/000.png\" has no label"),
        ("a word for a label", "circle/000.png cat".into(), ":2: label \"cat\" is not a class index"),
        ("an absolute path", "/etc/passwd 1".into(), ":2: \"/etc/passwd\" is not relative"),
        ("a missing image", "circle/999.png 0".into(), ":2: "),
        ("a broken image", "broken.png 0".into(), ":2: "),
        ("a label past classes.txt", "circle/000.png 3".into(), ":2: label 3 is not a class index: there are 3 classes"),
        ("an empty list", String::new(), ": lists no images"),
    ];
    std::fs::write(images.join("classes.txt"), CLASSES.join("\n")).unwrap();
    for (what, line, expected) in cases {
        let lines = if line.is_empty() { vec![] } else { vec![good[0].clone(), line, good[1].clone()] };
        let list = write_list(&images.join("list.txt"), &lines);
        let o = vpt(&[&["train", "--model", &model, "--data", text(&list), "--out", text(&dir.join("x.safetensors"))], &RECIPE[..]].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{what}: trained");
        assert!(err.contains(&format!("{}{expected}", list.display())), "{what}: {err}");
    }
    // `--root` with a folder means nothing, and says so.
    let o = vpt(&[&["train", "--model", &model, "--data", text(&images), "--root", text(&dir), "--out", text(&dir.join("x.safetensors"))], &RECIPE[..]].concat());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--root") && err.contains("is a folder"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
