//! The data pipeline: folder scanning, the split, transforms and the epoch loader. No GPU needed;
//! every image is a few pixels, written into a temporary folder with the `image` crate.

use image::{GrayAlphaImage, GrayImage, ImageBuffer, Luma, LumaA, Rgb, RgbImage, Rgba, RgbaImage};
use std::path::{Path, PathBuf};
use vpt_wgsl::train::data::*;

/// A fresh folder under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("vpt-data-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// `self/rel`, with its parent folders created.
    fn file(&self, rel: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A w×h RGB image whose every pixel differs, seeded by `tag`.
fn pattern(w: u32, h: u32, tag: u8) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = (x * 7 + y * 31) as u8;
        Rgb([v.wrapping_add(tag), v.wrapping_mul(3).wrapping_add(tag), 255 - v])
    })
}

/// The pixel-exact reference: (p/255 − mean)/std in f32, as torchvision computes it.
fn normalise(p: u8, c: usize, norm: Normalization) -> f32 {
    (p as f32 / 255.0 - norm.mean[c]) / norm.std[c]
}

/// Value of CHW `img` [3, s, s] at (c, y, x).
fn at(img: &[f32], s: usize, c: usize, y: usize, x: usize) -> f32 {
    img[(c * s + y) * s + x]
}

/// A folder with two classes, `n_a` and `n_b` small PNGs.
fn two_class_folder(name: &str, n_a: usize, n_b: usize) -> TempDir {
    let dir = TempDir::new(name);
    for i in 0..n_a {
        pattern(8, 6, i as u8).save(dir.file(&format!("ant/{i:02}.png"))).unwrap();
    }
    for i in 0..n_b {
        pattern(6, 9, 100 + i as u8).save(dir.file(&format!("bee/{i:02}.png"))).unwrap();
    }
    dir
}

// ----- normalisation ------------------------------------------------------------------------

#[test]
fn normalization_parses_and_round_trips() {
    let n = Normalization::parse("0.5, 0.5,0.5", "0.25,0.5,1").unwrap();
    assert_eq!(n, Normalization { mean: [0.5; 3], std: [0.25, 0.5, 1.0] });
    for n in [Normalization::IMAGENET, Normalization { mean: [0.1, -0.0, 1e-7], std: [0.3, 1.0 / 3.0, 7.0] }] {
        let (m, s) = n.to_strings();
        let back = Normalization::parse(&m, &s).unwrap();
        assert_eq!(back.mean.map(f32::to_bits), n.mean.map(f32::to_bits));
        assert_eq!(back.std.map(f32::to_bits), n.std.map(f32::to_bits));
    }
    assert_eq!(Normalization::IMAGENET.to_strings().0, "0.485,0.456,0.406");
}

#[test]
fn normalization_rejects_bad_input() {
    for (mean, std) in [("0.5,0.5", "1,1,1"), ("0.5,x,0.5", "1,1,1"), ("0.5,0.5,0.5", "1,0,1"), ("nan,0,0", "1,1,1"), ("", "1,1,1"), ("1,1,1", "1,-1,1")] {
        let e = Normalization::parse(mean, std).unwrap_err().to_string();
        assert!(e.contains("e.g."), "{mean} / {std}: {e}");
    }
}

// ----- scanning -----------------------------------------------------------------------------

#[test]
fn scan_reads_every_kind_of_image_and_skips_the_rest() {
    let dir = TempDir::new("scan");
    GrayImage::from_pixel(5, 4, Luma([77])).save(dir.file("cat/a_grey.png")).unwrap();
    RgbaImage::from_pixel(5, 4, Rgba([10, 20, 30, 0])).save(dir.file("cat/b_rgba.png")).unwrap();
    ImageBuffer::<Rgb<u16>, _>::from_pixel(5, 4, Rgb([65535u16, 0, 257 * 100])).save(dir.file("cat/c_16bit.png")).unwrap();
    GrayAlphaImage::from_pixel(5, 4, LumaA([200, 9])).save(dir.file("cat/d_grey_alpha.png")).unwrap();
    pattern(9, 7, 0).save(dir.file("dog/photo.jpg")).unwrap();
    pattern(9, 7, 0).save(dir.file("dog/Z.JPEG")).unwrap();
    // Garbage with an image extension, a text file, OS litter, a loose file in the root.
    let mut bytes = Vec::new();
    let mut s = 7u64;
    for _ in 0..300 {
        bytes.push(vpt_wgsl::rng::next_u64(&mut s) as u8);
    }
    std::fs::write(dir.file("dog/corrupt.png"), &bytes).unwrap();
    std::fs::write(dir.file("cat/notes.txt"), "hello").unwrap();
    std::fs::write(dir.file("cat/.DS_Store"), &bytes).unwrap();
    std::fs::write(dir.file("dog/._photo.jpg"), &bytes).unwrap();
    std::fs::create_dir_all(dir.file(".git/x")).unwrap();
    std::fs::write(dir.file("README.txt"), "hi").unwrap();

    let f = ImageFolder::scan(dir.path()).unwrap();
    assert_eq!(f.classes, ["cat", "dog"]);
    let names: Vec<(String, usize)> = f.samples.iter().map(|s| (s.path.file_name().unwrap().to_str().unwrap().to_string(), s.label)).collect();
    let want = [("a_grey.png", 0), ("b_rgba.png", 0), ("c_16bit.png", 0), ("d_grey_alpha.png", 0), ("Z.JPEG", 1), ("photo.jpg", 1)];
    assert_eq!(names, want.map(|(n, l)| (n.to_string(), l)));
    let skipped: Vec<&str> = f.skipped.iter().map(|(p, _)| p.file_name().unwrap().to_str().unwrap()).collect();
    assert_eq!(skipped, ["README.txt", "notes.txt", "corrupt.png"]);
    assert!(f.skipped[1].1.contains("not a JPEG or PNG"), "{:?}", f.skipped[1]);
    assert!(f.skipped[2].1.contains("corrupt"), "{:?}", f.skipped[2]);

    // Every kind decodes to RGB: grey repeated, alpha dropped, 16 bits rounded to 8.
    let norm = Normalization { mean: [0.0; 3], std: [1.0; 3] };
    let eval = Transform::Eval { size: 4, resize: 4 };
    let pixel = |name: &str| {
        let img = load_image(&dir.0.join(name), eval, norm, &mut 0).unwrap();
        assert_eq!(img.len(), 3 * 4 * 4);
        [0, 1, 2].map(|c| (at(&img, 4, c, 1, 1) * 255.0).round() as u8)
    };
    assert_eq!(pixel("cat/a_grey.png"), [77, 77, 77]);
    assert_eq!(pixel("cat/b_rgba.png"), [10, 20, 30]);
    assert_eq!(pixel("cat/c_16bit.png"), [255, 0, 100]);
    assert_eq!(pixel("cat/d_grey_alpha.png"), [200, 200, 200]);
    assert_eq!(load_image(&dir.0.join("dog/photo.jpg"), eval, norm, &mut 0).unwrap().len(), 48);
}

#[test]
fn scan_errors_name_the_problem() {
    let dir = TempDir::new("scan-errors");
    let missing = dir.path().join("nope");
    let e = ImageFolder::scan(&missing).err().unwrap().to_string();
    assert!(e.contains("nope") && e.contains("no such folder"), "{e}");

    let empty = dir.file("empty/x");
    let empty = empty.parent().unwrap();
    let e = ImageFolder::scan(empty).err().unwrap().to_string();
    assert!(e.contains("empty") && e.contains("no class sub-folders"), "{e}");

    pattern(4, 4, 0).save(dir.file("file_root.png")).unwrap();
    let e = ImageFolder::scan(&dir.path().join("file_root.png")).err().unwrap().to_string();
    assert!(e.contains("not a folder"), "{e}");

    let data = dir.path().join("data");
    pattern(4, 4, 0).save(dir.file("data/ant/1.png")).unwrap();
    std::fs::write(dir.file("data/bee/readme.txt"), "no images here").unwrap();
    let e = ImageFolder::scan(&data).err().unwrap().to_string();
    assert!(e.contains("\"bee\"") && e.contains("no usable") && e.contains("readme.txt"), "{e}");
    std::fs::create_dir_all(dir.file("data/cow/x").parent().unwrap()).unwrap();
    std::fs::remove_dir_all(data.join("bee")).unwrap();
    let e = ImageFolder::scan(&data).err().unwrap().to_string();
    assert!(e.contains("\"cow\"") && e.contains("empty"), "{e}");
}

#[test]
fn scan_with_classes_requires_the_training_classes() {
    let dir = two_class_folder("with-classes", 2, 3);
    let classes = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // Same classes in another order: labels follow the given order.
    let f = ImageFolder::scan_with_classes(dir.path(), &classes(&["bee", "ant"])).unwrap();
    assert_eq!(f.classes, ["bee", "ant"]);
    let labels: Vec<usize> = f.samples.iter().map(|s| s.label).collect();
    assert_eq!(labels, [0, 0, 0, 1, 1]);
    assert!(f.samples[0].path.ends_with("bee/00.png"));

    let e = ImageFolder::scan_with_classes(dir.path(), &classes(&["ant", "bee", "cow"])).err().unwrap().to_string();
    assert!(e.contains("missing [\"cow\"]"), "{e}");
    let e = ImageFolder::scan_with_classes(dir.path(), &classes(&["ant"])).err().unwrap().to_string();
    assert!(e.contains("unexpected [\"bee\"]"), "{e}");
    let e = ImageFolder::scan_with_classes(dir.path(), &classes(&["ant", "ant", "bee"])).err().unwrap().to_string();
    assert!(e.contains("twice"), "{e}");
}

// ----- split --------------------------------------------------------------------------------

#[test]
fn split_is_stratified_deterministic_and_disjoint() {
    let samples: Vec<Sample> = [(0, 30), (1, 2), (2, 1), (3, 15)].iter().flat_map(|&(label, n)| (0..n).map(move |i| Sample { path: format!("c{label}/{i}.png").into(), label })).collect();
    let (train, val) = split_train_val(&samples, 0.1, 42);
    let count = |v: &[Sample], l| v.iter().filter(|s| s.label == l).count();
    assert_eq!([0, 1, 2, 3].map(|l| count(&val, l)), [3, 1, 0, 2]); // 10% rounded, ≥ 1 when ≥ 2 images
    assert_eq!(train.len() + val.len(), samples.len());
    let mut all: Vec<&PathBuf> = train.iter().chain(&val).map(|s| &s.path).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), samples.len(), "train and val overlap");

    let (train2, val2) = split_train_val(&samples, 0.1, 42);
    let paths = |v: &[Sample]| v.iter().map(|s| s.path.clone()).collect::<Vec<_>>();
    assert_eq!((paths(&train), paths(&val)), (paths(&train2), paths(&val2)));
    let (_, val3) = split_train_val(&samples, 0.1, 43);
    assert_ne!(paths(&val), paths(&val3), "the seed should matter");
    let (train0, val0) = split_train_val(&samples, 0.0, 42);
    assert_eq!((train0.len(), val0.len()), (samples.len(), 0));
}

// ----- transforms ---------------------------------------------------------------------------

#[test]
fn default_resize_matches_the_usual_values() {
    assert_eq!(default_resize(224), 256);
    assert_eq!(default_resize(448), 512);
    assert_eq!(default_resize(384), 439);
    assert_eq!(default_resize(32), 37);
}

#[test]
fn centre_crop_gives_the_expected_normalised_pixels() {
    let dir = TempDir::new("centre");
    let norm = Normalization::IMAGENET;
    // Shorter side already equal to `resize`: no resampling, so outputs are exact.
    // 6×9 (w×h), crop 4: left = round(2/2) = 1, top = round(5/2) = 2 (half to even).
    // 7×6, crop 4: left = round(3/2) = 2, top = 1.
    for (w, h, left, top) in [(6u32, 9u32, 1usize, 2usize), (7, 6, 2, 1)] {
        let img = pattern(w, h, 3);
        let path = dir.file(&format!("{w}x{h}.png"));
        img.save(&path).unwrap();
        let out = load_image(&path, Transform::Eval { size: 4, resize: 6 }, norm, &mut 0).unwrap();
        assert_eq!(out.len(), 3 * 4 * 4);
        for c in 0..3 {
            for y in 0..4 {
                for x in 0..4 {
                    let p = img.get_pixel((left + x) as u32, (top + y) as u32).0[c];
                    assert_eq!(at(&out, 4, c, y, x).to_bits(), normalise(p, c, norm).to_bits(), "{w}x{h} c{c} y{y} x{x}");
                }
            }
        }
    }
}

#[test]
fn resize_keeps_the_aspect_ratio_like_torchvision() {
    // A flat image resizes to flat values whatever the size, so only the crop size shows; the
    // output must exist for tall and wide inputs, up- and down-scaled.
    let dir = TempDir::new("resize");
    let norm = Normalization { mean: [0.0; 3], std: [1.0; 3] };
    for (w, h) in [(5u32, 40u32), (40, 5), (3, 3), (50, 37)] {
        let path = dir.file(&format!("{w}x{h}.png"));
        RgbImage::from_pixel(w, h, Rgb([51, 102, 204])).save(&path).unwrap();
        for t in [Transform::Eval { size: 8, resize: 9 }, Transform::Train { size: 8, resize: 8, flip: true }] {
            let out = load_image(&path, t, norm, &mut 5).unwrap();
            assert_eq!(out.len(), 3 * 8 * 8);
            assert!(out[..64].iter().all(|&v| (v - 0.2).abs() < 1e-6), "{w}x{h} {t:?}");
        }
    }
    // Smaller than the crop after resizing: an error, not a panic.
    let e = load_image(&dir.0.join("3x3.png"), Transform::Eval { size: 8, resize: 4 }, norm, &mut 0).unwrap_err();
    assert!(e.to_string().contains("smaller than the 8x8 crop"), "{e}");
}

#[test]
fn random_crop_is_a_window_and_flip_flips() {
    let dir = TempDir::new("flip");
    let norm = Normalization { mean: [0.0; 3], std: [1.0; 3] };
    let (w, h, s) = (6u32, 9u32, 4usize);
    let img = pattern(w, h, 11);
    let path = dir.file("img.png");
    img.save(&path).unwrap();
    // The window at (top, left), optionally mirrored, as [3, s, s].
    let window = |top: usize, left: usize, flip: bool| {
        let mut v = vec![0f32; 3 * s * s];
        for c in 0..3 {
            for y in 0..s {
                for x in 0..s {
                    let sx = if flip { s - 1 - x } else { x };
                    v[(c * s + y) * s + x] = img.get_pixel((left + sx) as u32, (top + y) as u32).0[c] as f32 / 255.0;
                }
            }
        }
        v
    };
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..200u64 {
        let mut rng = seed;
        let out = load_image(&path, Transform::Train { size: s, resize: 6, flip: true }, norm, &mut rng).unwrap();
        let hit = (0..=(h as usize - s))
            .flat_map(|t| (0..=(w as usize - s)).flat_map(move |l| [(t, l, false), (t, l, true)]))
            .find(|&(t, l, f)| window(t, l, f) == out)
            .expect("output is not a (mirrored) window of the image");
        seen.insert(hit);
        // Same rng state, same output.
        let again = load_image(&path, Transform::Train { size: s, resize: 6, flip: true }, norm, &mut { seed }).unwrap();
        assert_eq!(again, out);
    }
    // 6 tops × 3 lefts × 2 flips = 36 outcomes: 200 draws should meet nearly all of them.
    assert!(seen.len() >= 30, "only {} distinct crops", seen.len());
    assert!(seen.iter().any(|h| h.2) && seen.iter().any(|h| !h.2));
    // No flip requested: never mirrored.
    for seed in 0..50u64 {
        let out = load_image(&path, Transform::Train { size: s, resize: 6, flip: false }, norm, &mut { seed }).unwrap();
        let unflipped = (0..=5).any(|t| (0..=2).any(|l| window(t, l, false) == out));
        assert!(unflipped);
    }
}

// ----- epoch loader -------------------------------------------------------------------------

fn collect(loader: EpochLoader) -> Vec<Batch> {
    loader.map(|b| b.unwrap()).collect()
}

fn batch_paths(batches: &[Batch]) -> Vec<Vec<PathBuf>> {
    batches.iter().map(|b| b.paths.clone()).collect()
}

#[test]
fn epoch_loader_is_deterministic_resumable_and_reshuffles() {
    let dir = two_class_folder("loader", 5, 5);
    let samples = ImageFolder::scan(dir.path()).unwrap().samples;
    let t = Transform::Train { size: 4, resize: 6, flip: true };
    let norm = Normalization::IMAGENET;
    let make = |epoch, start| EpochLoader::new(samples.clone(), t, norm, 4, true, 7, epoch, start);

    let full = collect(make(0, 0));
    assert_eq!(make(0, 0).num_batches(), 3);
    assert_eq!(full.iter().map(Batch::len).collect::<Vec<_>>(), [4, 4, 2], "the last batch is smaller");
    assert_eq!(full[0].shape(), [4, 3, 4, 4]);
    assert_eq!(full[2].shape(), [2, 3, 4, 4]);
    assert_eq!(full[0].images.len(), 4 * 3 * 4 * 4);
    let mut all: Vec<PathBuf> = full.iter().flat_map(|b| b.paths.clone()).collect();
    all.sort();
    assert_eq!(all, samples.iter().map(|s| s.path.clone()).collect::<Vec<_>>(), "every sample once");
    for b in &full {
        for (p, &l) in b.paths.iter().zip(&b.labels) {
            assert_eq!(samples.iter().find(|s| &s.path == p).unwrap().label as u32, l);
        }
    }

    // Same seed and epoch: the same batches, bit for bit.
    let again = collect(make(0, 0));
    for (a, b) in full.iter().zip(&again) {
        assert_eq!((&a.paths, &a.labels), (&b.paths, &b.labels));
        assert_eq!(a.images.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.images.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }

    // Resuming at batch k gives exactly batches k.. of the full run.
    for k in 0..=3 {
        let resumed = make(0, k);
        assert_eq!(resumed.num_batches(), 3);
        let resumed = collect(resumed);
        assert_eq!(resumed.len(), 3 - k);
        for (a, b) in full[k..].iter().zip(&resumed) {
            assert_eq!((&a.paths, &a.labels), (&b.paths, &b.labels));
            assert_eq!(a.images, b.images);
        }
    }

    // Another epoch: another order (and other crops).
    let next = collect(make(1, 0));
    assert_ne!(batch_paths(&full), batch_paths(&next));

    // No shuffle: folder order.
    let plain = collect(EpochLoader::new(samples.clone(), t, norm, 3, false, 7, 0, 0));
    let order: Vec<PathBuf> = plain.iter().flat_map(|b| b.paths.clone()).collect();
    assert_eq!(order, samples.iter().map(|s| s.path.clone()).collect::<Vec<_>>());
    assert_eq!(plain.iter().map(Batch::len).collect::<Vec<_>>(), [3, 3, 3, 1]);
}

#[test]
fn epoch_loader_edge_cases() {
    let dir = two_class_folder("loader-edges", 3, 2);
    let samples = ImageFolder::scan(dir.path()).unwrap().samples;
    let t = Transform::Eval { size: 4, resize: 6 };
    let norm = Normalization::IMAGENET;

    assert_eq!(EpochLoader::new(Vec::new(), t, norm, 4, true, 0, 0, 0).count(), 0);
    assert_eq!(EpochLoader::new(samples.clone(), t, norm, 4, true, 0, 0, 9).count(), 0);
    let mut zero = EpochLoader::new(samples.clone(), t, norm, 0, true, 0, 0, 0);
    assert!(zero.next().unwrap().unwrap_err().to_string().contains("batch size"));
    assert!(zero.next().is_none());

    // Dropping a loader with batches still pending returns promptly.
    let mut one_at_a_time = EpochLoader::new(samples.clone(), t, norm, 1, true, 0, 0, 0);
    assert_eq!(one_at_a_time.next().unwrap().unwrap().len(), 1);
    drop(one_at_a_time);
}

#[test]
fn a_file_deleted_after_the_scan_is_an_error_naming_it() {
    let dir = two_class_folder("deleted", 3, 3);
    let samples = ImageFolder::scan(dir.path()).unwrap().samples;
    let gone = dir.path().join("bee/01.png");
    std::fs::remove_file(&gone).unwrap();
    let t = Transform::Eval { size: 4, resize: 6 };
    let results: Vec<_> = EpochLoader::new(samples, t, Normalization::IMAGENET, 2, false, 0, 0, 0).collect();
    // Batches [ant 0, ant 1], [ant 2, bee 0], then [bee 1 (gone), bee 2]: the error ends the epoch.
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[1].is_ok());
    let e = results[2].as_ref().err().unwrap().to_string();
    assert!(e.contains(&gone.display().to_string()), "{e}");
}
