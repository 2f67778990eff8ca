// /check: the engine's `check` (web/src/check.rs) on this browser's adapter, shown as the table
// `vpt check` prints. /check?run=check runs at once and sets window.vptCheck = {passed, failed,
// skipped, device, kernels: [...]} or {error} (tests/browser.rs).
import init, { adapter, check } from "/pkg/vpt_web.js";

const $ = (id) => document.getElementById(id);

function addRow(json) {
  const row = JSON.parse(json);
  const tr = document.createElement("tr");
  tr.className = row.skipped ? "skip" : row.ok ? "ok" : "fail";
  const verdict = row.skipped ? "skip" : row.ok ? "ok" : "FAIL";
  const error = row.skipped ? `skipped: ${row.skipped}` : row.failure ? `error: ${row.failure}` : row.error.toExponential(2);
  for (const text of [verdict, row.kernel, row.case, row.against, error, row.skipped ? "" : `≤ ${row.tolerance.toExponential(0)}`]) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  $("rows").append(tr);
  $("status").textContent = `${$("rows").children.length} checks so far`;
}

async function runChecks() {
  $("run").disabled = true;
  $("rows").textContent = "";
  try {
    const result = JSON.parse(await check(addRow));
    $("status").textContent = `${result.passed} passed, ${result.failed} failed, ${result.skipped} skipped on ${result.device}`;
    return result;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    $("error").textContent = `error: ${message}`;
    return { error: message };
  } finally {
    $("run").disabled = false;
  }
}

async function main() {
  await init();
  adapter().then((a) => { $("adapter").textContent = a; }, (e) => { $("error").textContent = String(e); });
  $("run").addEventListener("click", runChecks);
  if (new URLSearchParams(location.search).get("run") === "check") window.vptCheck = await runChecks();
}

main().catch((e) => {
  const message = e instanceof Error ? e.message : String(e);
  $("error").textContent = `error: ${message.includes("vpt_web") ? `the browser package is missing: build it with \`bash web/build.sh\` and restart vpt lab (${message})` : message}`;
  window.vptCheck = { error: message };
});
