// /train: the page around the engine's `train` (web/src/lib.rs). Reads the backbone and the
// image folder the user gives, builds the recipe form from the engine's own list of settings
// (the flags of `vpt train`, with their defaults), trains, draws the curves, offers the task file
// and classifies dropped images.
//
// Automation (tests/browser.rs): /train?run=train&demo=1&<setting>=<value>… trains the demo at
// once and sets window.vptTrain = {done, epochs, task (base64)} or {error}.
import init, { adapter, train, classify, load_task, recipe_settings } from "/pkg/vpt_web.js";

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
let folder = null;   // {root, paths: [...], files: [Uint8Array]}
// [epoch, value] at each epoch's end; `steps`: [fraction of epochs done, loss] after each step.
// Also window.vptCurves, what the test checks.
const curves = { loss: [], val: [], steps: [] };
window.vptCurves = curves;
let epochStart = 0;  // performance.now() when the epoch began: the engine has no clock in a page
const epochSeconds = [];

function showError(message) {
  $("error").textContent = message ? `error: ${message}` : "";
}

// The recipe form: one input per setting, named as the flag, holding the flag's default; a
// query parameter of the same name replaces the default.
function buildRecipe() {
  const settings = JSON.parse(recipe_settings());
  for (const [name, fallback] of settings) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.id = `setting-${name}`;
    if (fallback === "false") {
      input.type = "checkbox";
      input.checked = ["1", "true", "on", ""].includes(query.get(name) ?? "false");
    } else {
      input.type = "text";
      input.value = query.get(name) ?? fallback;
      input.placeholder = fallback === "" ? "default" : fallback;
    }
    input.dataset.name = name;
    label.append(`${name} `, input);
    $("recipe").append(label);
  }
  for (const name of query.keys()) {
    if (!["run", "demo"].includes(name) && !settings.some(([n]) => n === name)) {
      showError(`"${name}" is not a setting of vpt train; the settings are ${settings.map(([n]) => n).join(", ")}`);
    }
  }
}

function recipe() {
  const pairs = [];
  for (const input of $("recipe").querySelectorAll("input")) {
    if (input.type === "checkbox") pairs.push([input.dataset.name, input.checked ? "1" : "0"]);
    else if (input.value.trim() !== "") pairs.push([input.dataset.name, input.value.trim()]);
  }
  return pairs;
}

async function fetchBytes(url) {
  const answer = await fetch(url);
  if (!answer.ok) throw new Error(`${url}: ${answer.status} ${answer.statusText}`);
  return new Uint8Array(await answer.arrayBuffer());
}

async function demoFolder() {
  const list = await (await fetch("/demo/train.json")).json();
  const files = [];
  for (const path of list.files) files.push(await fetchBytes(`/demo/train/${path}`));
  return { root: list.root, paths: list.files, files };
}

// A folder from the picker or a drop: every file's path under the folder and its bytes.
async function folderFromFiles(fileList) {
  const entries = [...fileList].map((f) => [f.webkitRelativePath || f.name, f]);
  if (entries.length === 0) throw new Error("the folder is empty; pick a folder with one sub-folder of images per class");
  const root = entries[0][0].includes("/") ? entries[0][0].split("/")[0] : "folder";
  const paths = [], files = [];
  for (const [path, file] of entries) {
    paths.push(path.includes("/") ? path.slice(root.length + 1) : path);
    files.push(new Uint8Array(await file.arrayBuffer()));
  }
  return { root, paths, files };
}

// What a drop holds, read through the entries API (a dropped folder is not a file list).
async function folderFromDrop(items) {
  const out = [];
  async function walk(entry, path) {
    if (entry.isFile) {
      const file = await new Promise((ok, fail) => entry.file(ok, fail));
      out.push([path, file]);
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, `${path}/${child.name}`);
      }
    }
  }
  const roots = [...items].map((i) => i.webkitGetAsEntry()).filter(Boolean);
  if (roots.length !== 1 || !roots[0].isDirectory) throw new Error("drop one folder, with one sub-folder of images per class");
  await walk(roots[0], "");
  const paths = out.map(([p]) => p.slice(1)), files = [];
  for (const [, file] of out) files.push(new Uint8Array(await file.arrayBuffer()));
  return { root: roots[0].name, paths, files };
}

function setFolder(f) {
  folder = f;
  $("data-summary").textContent = `${f.root}: ${f.paths.length} files`;
}

async function backbone() {
  const picked = document.querySelector("input[name=backbone]:checked").value;
  if (picked === "demo") return ["backbone.safetensors", await fetchBytes("/demo/backbone.safetensors")];
  const file = $("backbone-file").files[0];
  if (!file) throw new Error("pick a .safetensors backbone, or choose the bundled demo backbone");
  return [file.name, new Uint8Array(await file.arrayBuffer())];
}

function drawCurves() {
  const canvas = $("curves"), g = canvas.getContext("2d");
  const [w, h, pad] = [canvas.width, canvas.height, 30];
  g.clearRect(0, 0, w, h);
  const epochs = Math.max(1, curves.total ?? 1);
  const maxLoss = Math.max(1e-9, ...curves.loss.map(([, v]) => v), ...curves.steps.map(([, v]) => v));
  const x = (e) => pad + (e / epochs) * (w - 2 * pad);
  const line = (points, scale, color, label, row) => {
    g.strokeStyle = g.fillStyle = color;
    g.beginPath();
    points.forEach(([e, v], i) => {
      const y = h - pad - (v / scale) * (h - 2 * pad);
      if (i === 0) g.moveTo(x(e), y); else g.lineTo(x(e), y);
      g.fillRect(x(e) - 3, y - 3, 6, 6);
    });
    g.stroke();
    g.fillText(label, w - 330, 16 * row);
  };
  g.font = "12px sans-serif";
  // Axes: epochs along the bottom, 0 at the bottom of both series.
  g.strokeStyle = g.fillStyle = "#888";
  g.beginPath();
  g.moveTo(pad, pad / 2);
  g.lineTo(pad, h - pad);
  g.lineTo(w - pad, h - pad);
  g.stroke();
  const step = Math.max(1, Math.ceil(epochs / 10));
  for (let e = 1; e <= epochs; e += step) g.fillText(String(e), x(e) - 3, h - pad + 14);
  g.fillText("epoch", w - pad - 30, h - 4);
  g.fillText("0", pad - 12, h - pad + 4);
  g.fillStyle = "#e9a";
  for (const [e, v] of curves.steps) g.fillRect(x(e) - 1.5, h - pad - (v / maxLoss) * (h - 2 * pad) - 1.5, 3, 3);
  line(curves.loss, maxLoss, "#c33", `train loss: each step, and each epoch's mean (max ${maxLoss.toFixed(3)})`, 1);
  line(curves.val, 1, "#36c", "validation top-1 (0 to 100%)", 2);
  // Where each point was drawn and the colour the canvas holds there now: what a test checks.
  curves.drawn = [];
  for (const [series, points, scale] of [["loss", curves.loss, maxLoss], ["val", curves.val, 1]]) {
    for (const [e, v] of points) {
      const [px, py] = [Math.round(x(e)), Math.round(h - pad - (v / scale) * (h - 2 * pad))];
      curves.drawn.push({ series, epoch: e, x: px, y: py, rgba: [...g.getImageData(px, py, 1, 1).data] });
    }
  }
}

function onProgress(json) {
  const p = JSON.parse(json);
  if (p.warning) $("warnings").textContent += `${p.warning}\n`;
  if (p.stage === "reading") $("status").textContent = `reading images: ${p.done} of ${p.of}`;
  if (p.stage === "training") $("status").textContent = `training on ${p.device}: ${p.classes.length} classes, ${p.train} train / ${p.val} val images, ${p.steps_per_epoch} steps per epoch, lr ${p.lr.toFixed(4)}`;
  if (p.step) {
    $("progress").value = ((p.epoch - 1) * p.steps + p.step) / (p.epochs * p.steps);
    curves.total = p.epochs;
    curves.steps.push([p.epoch - 1 + p.step / p.steps, p.loss]);
    if (p.step === p.steps || p.step % 5 === 0) drawCurves();
    $("status").textContent = `epoch ${p.epoch}/${p.epochs}, step ${p.step}/${p.steps}: loss ${p.loss.toFixed(4)}, train top-1 ${(100 * p.train_top1).toFixed(1)}%`;
  }
  if (p.stage === "training") epochStart = performance.now();
  if (p.epoch_done) {
    const e = p.epoch_done;
    const now = performance.now();
    epochSeconds.push((now - epochStart) / 1000);
    epochStart = now;
    curves.loss.push([e.epoch, e.loss]);
    if (e.val_top1 !== null) curves.val.push([e.epoch, e.val_top1]);
    drawCurves();
  }
}

function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

async function runTraining() {
  showError("");
  $("warnings").textContent = "";
  curves.loss.length = curves.val.length = curves.steps.length = epochSeconds.length = 0;
  $("train").disabled = true;
  try {
    if (!folder) throw new Error("no images: drop a folder with one sub-folder of images per class, or use the demo digits");
    const [name, bytes] = await backbone();
    const result = await train(JSON.stringify(recipe()), name, bytes, folder.root, JSON.stringify(folder.paths), folder.files, onProgress);
    const epochs = JSON.parse(result.epochs).map((e, i) => ({ ...e, seconds: epochSeconds[i] }));
    const url = URL.createObjectURL(new Blob([result.task], { type: "application/octet-stream" }));
    $("download").href = url;
    $("download").hidden = false;
    $("status").textContent += "\ndone";
    return { done: true, epochs, task: base64(result.task) };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    showError(message);
    return { error: message };
  } finally {
    $("train").disabled = false;
  }
}

async function classifyFile(file) {
  try {
    const answer = JSON.parse(await classify(file.name, new Uint8Array(await file.arrayBuffer())));
    $("prediction").textContent = `${file.name}: ${answer.class}`;
    showError("");
  } catch (e) {
    showError(e instanceof Error ? e.message : String(e));
  }
}

// A task file written earlier (here or by `vpt train`), for the backbone chosen above.
async function loadTaskFile(file) {
  try {
    const [name, bytes] = await backbone();
    const classes = JSON.parse(await load_task(file.name, new Uint8Array(await file.arrayBuffer()), name, bytes));
    $("prediction").textContent = `loaded ${file.name}: ${classes.length} classes (${classes.join(", ")})`;
    showError("");
  } catch (e) {
    showError(e instanceof Error ? e.message : String(e));
  }
}

function dropZone(element, onDrop) {
  element.addEventListener("dragover", (e) => { e.preventDefault(); element.classList.add("over"); });
  element.addEventListener("dragleave", () => element.classList.remove("over"));
  element.addEventListener("drop", (e) => { e.preventDefault(); element.classList.remove("over"); onDrop(e.dataTransfer); });
}

async function main() {
  await init();
  buildRecipe();
  adapter().then((a) => { $("adapter").textContent = a; }, (e) => showError(String(e)));
  $("folder").addEventListener("change", (e) => folderFromFiles(e.target.files).then(setFolder, (err) => showError(err.message)));
  $("use-demo").addEventListener("click", () => demoFolder().then(setFolder, (err) => showError(err.message)));
  $("task-file").addEventListener("change", (e) => e.target.files[0] && loadTaskFile(e.target.files[0]));
  dropZone($("drop"), (t) => folderFromDrop(t.items).then(setFolder, (e) => showError(e.message)));
  dropZone($("classify"), (t) => t.files[0] && classifyFile(t.files[0]));
  $("image").addEventListener("change", (e) => e.target.files[0] && classifyFile(e.target.files[0]));
  $("train").addEventListener("click", runTraining);
  if (query.get("run") === "train") {
    $("status").textContent = "training as the address asks";
    if (query.get("demo") === "1") setFolder(await demoFolder());
    window.vptTrain = await runTraining();
  }
}

main().catch((e) => {
  const message = e instanceof Error ? e.message : String(e);
  showError(message.includes("vpt_web") ? `the browser package is missing: build it with \`bash web/build.sh\` and restart vpt lab (${message})` : message);
  window.vptTrain = { error: message };
});
