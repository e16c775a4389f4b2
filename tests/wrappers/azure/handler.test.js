// MockTestRunner tests of the shared handler (ci-oras-task.js) through the CiOrasPush task.
"use strict";
const assert = require("node:assert");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { test } = require("node:test");
const ttm = require("azure-pipelines-task-lib/mock-test");

// the one handler of the committed tree (stage.sh copies it into each task; MOCK_TASKS is such a stage)
const { buildArguments, registryHost } = require("../../../azure-pipelines/ci-oras-task");

async function runPush(inputs, exit = 0, env = {}) {
  process.env.MOCK_INPUTS = JSON.stringify(inputs);
  process.env.MOCK_ENV = JSON.stringify(env);
  process.env.MOCK_TEMP = fs.mkdtempSync(path.join(os.tmpdir(), "ci-oras-mock-"));
  process.env.MOCK_EXIT = String(exit);
  const tr = new ttm.MockTestRunner(path.join(__dirname, "mock-push.js"));
  tr.nodePath = process.execPath;
  await tr.runAsync();
  const line = tr.stdout.split("\n").find((l) => l.startsWith("SPAWNED "));
  return { tr, spawned: line ? JSON.parse(line.slice(8)) : null };
}

test("push: arguments built from the inputs, the password on stdin only", async () => {
  const { tr, spawned } = await runPush({
    reference: "localhost:5000/app:v1", files: "a.txt\n\n  b.txt:text/plain  \n", artifactType: "application/x",
    annotations: "k=v\n", plainHttp: "false", insecure: "true", username: "me", password: "hunter2-secret",
  });
  assert.ok(tr.succeeded, tr.stdout + tr.stderr);
  assert.deepStrictEqual(spawned.args, [
    "push", "--password-stdin", "--emit", "azure", "--artifact-type", "application/x", "--annotation", "k=v",
    "--insecure", "--username", "me", "--", "localhost:5000/app:v1", "a.txt", "b.txt:text/plain",
  ]);
  assert.strictEqual(spawned.stdin, "hunter2-secret\n");
  assert.ok(!spawned.args.join(" ").includes("hunter2"));
  assert.deepStrictEqual(spawned.env, {}, "no input or credential variable reaches ci-oras's environment");
  assert.ok(tr.stdout.includes("##vso[task.setvariable variable=artifactType;isOutput=true]application/x"));
});

test("push: a failing ci-oras fails the task; a bad input fails before running", async () => {
  const failed = await runPush({ reference: "r:1", files: "a" }, 2);
  assert.ok(failed.tr.failed);
  assert.ok(failed.tr.stdout.includes("failed with exit code 2"));
  const bad = await runPush({ reference: "", files: "a" });
  assert.ok(bad.tr.failed);
  assert.strictEqual(bad.spawned, null);
  assert.ok(bad.tr.stdout.includes("input 'reference' is required"));
});

test("verify: failOnMissing is a wrapper input, never a flag", () => {
  const step = { command: ["verify"], inputs: [
    { name: "reference", azure: "reference", maps: "argument", type: "string", required: true },
    { name: "require", azure: "require", maps: "option-per-line", type: "lines", flag: "--require", required: true },
    { name: "fail-on-missing", azure: "failOnMissing", maps: "wrapper", type: "boolean", default: "true" },
  ] };
  const inputs = { reference: "r:1", require: "sbom\nsignature", failOnMissing: "False" };
  const built = buildArguments(step, (name) => inputs[name]);
  assert.deepStrictEqual(built.args, ["verify", "--emit", "azure", "--require", "sbom", "--require", "signature",
    "--", "r:1"]);
  assert.strictEqual(built.wrapper["fail-on-missing"], false);
  assert.throws(() => buildArguments(step, (name) => ({ ...inputs, failOnMissing: "maybe" })[name]), /true or false/);
});

test("push: a service connection's credential goes to its registry host only, in CI_ORAS_* variables", async () => {
  const endpoint = {
    ENDPOINT_AUTH_PARAMETER_CONN_USERNAME: "conn-user",
    ENDPOINT_AUTH_PARAMETER_CONN_PASSWORD: "conn-Secret-9",
    ENDPOINT_AUTH_PARAMETER_CONN_REGISTRY: "https://Reg.Example.com:5000/v2/",
  };
  const { tr, spawned } = await runPush({ reference: "other.example/app:v1", files: "a.txt",
    dockerRegistryServiceConnection: "conn", username: "me", password: "hunter2-secret" }, 0, endpoint);
  assert.ok(tr.succeeded, tr.stdout + tr.stderr);
  // the inputs stay flags for the step's registry; the connection never becomes a flag
  assert.deepStrictEqual(spawned.args, ["push", "--password-stdin", "--emit", "azure", "--username", "me", "--",
    "other.example/app:v1", "a.txt"]);
  assert.strictEqual(spawned.stdin, "hunter2-secret\n");
  assert.deepStrictEqual(spawned.env, { CI_ORAS_REGISTRY: "reg.example.com:5000", CI_ORAS_USERNAME: "conn-user",
    CI_ORAS_PASSWORD: "conn-Secret-9" });
  // both secrets are masked before anything is logged, and never reach a debug line
  for (const value of ["hunter2-secret", "conn-Secret-9"]) {
    assert.ok(tr.stdout.includes(`##vso[task.setsecret]${value}`), value);
    assert.ok(!tr.stdout.split("\n").some((l) => l.startsWith("##vso[task.debug]") && l.includes(value)), value);
  }
});

test("push: a service connection without a registry URL fails before running", async () => {
  const { tr, spawned } = await runPush({ reference: "r.example/app:v1", files: "a.txt",
    dockerRegistryServiceConnection: "conn" }, 0,
  { ENDPOINT_AUTH_PARAMETER_CONN_USERNAME: "u", ENDPOINT_AUTH_PARAMETER_CONN_PASSWORD: "p-Secret-1" });
  assert.ok(tr.failed);
  assert.strictEqual(spawned, null);
  assert.ok(tr.stdout.includes("service connection 'conn' has no registry URL"), tr.stdout);
});

test("registryHost: host[:port] of the URL forms service connections hold", () => {
  assert.strictEqual(registryHost("https://index.docker.io/v1/"), "index.docker.io");
  assert.strictEqual(registryHost("myacr.azurecr.io"), "myacr.azurecr.io");
  assert.strictEqual(registryHost("http://127.0.0.1:5000"), "127.0.0.1:5000");
  assert.strictEqual(registryHost(""), "");
});
