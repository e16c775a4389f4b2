// The CiOrasPush task under TaskMockRunner with the real task library (its secrets must be read before the
// library loads, as on an agent): child_process.spawn is replaced by a fake that records what would run, and
// `ci-oras` is found on PATH as an empty executable in MOCK_TEMP. The task runs from MOCK_TASKS, tasks staged by
// azure-pipelines/stage.sh (the committed tree has no handler in the task folders).
"use strict";
const fs = require("fs");
const path = require("path");
const tmrm = require("azure-pipelines-task-lib/mock-run");

const task = path.join(process.env.MOCK_TASKS, "CiOrasPushV0/index.js");
const tmr = new tmrm.TaskMockRunner(task);
for (const [name, value] of Object.entries(JSON.parse(process.env.MOCK_INPUTS))) tmr.setInput(name, value);
for (const [name, value] of Object.entries(JSON.parse(process.env.MOCK_ENV || "{}"))) process.env[name] = value;
tmr.setVariableName("Agent.TempDirectory", process.env.MOCK_TEMP);
const bin = path.join(process.env.MOCK_TEMP, "bin");
fs.mkdirSync(bin, { recursive: true });
fs.writeFileSync(path.join(bin, "ci-oras"), "", { mode: 0o755 });
process.env.PATH = bin + path.delimiter + process.env.PATH;

const EventEmitter = require("events");
const { PassThrough } = require("stream");
const realChildProcess = require("child_process");
tmr.registerMock("child_process", {
  spawnSync: realChildProcess.spawnSync,
  spawn(command, args, options) {
    const child = new EventEmitter();
    child.stdout = new PassThrough();
    child.stderr = new PassThrough();
    let stdin = "";
    child.stdin = new PassThrough();
    child.stdin.on("data", (chunk) => { stdin += chunk; });
    child.stdin.on("finish", () => {
      const env = Object.fromEntries(Object.entries(options.env).filter(([k]) => /^(CI_ORAS_|INPUT_|ENDPOINT_)/.test(k)));
      console.log("SPAWNED " + JSON.stringify({ command: path.basename(command), args, stdin, env }));
      child.stderr.end("##vso[task.setvariable variable=artifactType;isOutput=true]application/x\n");
      child.stdout.end("");
      setImmediate(() => child.emit("close", Number(process.env.MOCK_EXIT || "0")));
    });
    return child;
  },
});
tmr.run(true);
