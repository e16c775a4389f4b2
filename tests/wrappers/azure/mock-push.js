// The CiOrasPush task under TaskMockRunner: child_process is replaced by a fake that records what would run.
"use strict";
const path = require("path");
const tmrm = require("azure-pipelines-task-lib/mock-run");

const task = path.join(__dirname, "../../../azure-pipelines/tasks/CiOrasPushV0/index.js");
const tmr = new tmrm.TaskMockRunner(task);
for (const [name, value] of Object.entries(JSON.parse(process.env.MOCK_INPUTS))) tmr.setInput(name, value);
tmr.setVariableName("Agent.TempDirectory", process.env.MOCK_TEMP);
tmr.setAnswers({ which: { "ci-oras": "/opt/ci-oras/bin/ci-oras" }, checkPath: { "/opt/ci-oras/bin/ci-oras": true } });

const EventEmitter = require("events");
const { PassThrough } = require("stream");
const realChildProcess = require("child_process");
tmr.registerMock("child_process", {
  spawnSync: realChildProcess.spawnSync,
  spawn(command, args) {
    const child = new EventEmitter();
    child.stdout = new PassThrough();
    child.stderr = new PassThrough();
    let stdin = "";
    child.stdin = new PassThrough();
    child.stdin.on("data", (chunk) => { stdin += chunk; });
    child.stdin.on("finish", () => {
      console.log("SPAWNED " + JSON.stringify({ command, args, stdin }));
      child.stderr.end("##vso[task.setvariable variable=artifact-type;isOutput=true]application/x\n");
      child.stdout.end("");
      setImmediate(() => child.emit("close", Number(process.env.MOCK_EXIT || "0")));
    });
    return child;
  },
});
tmr.run();
