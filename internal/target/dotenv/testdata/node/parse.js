// Reads the dotenv files named on stdin with Node's dotenv and writes what
// it parsed to the output file named there. Values never go to argv,
// stdout or stderr: the Go test that drives this treats them as secrets.
//
// stdin: {"files": ["/tmp/.../0.env", ...], "out": "/tmp/.../parsed.json"}
// out:   {"/tmp/.../0.env": {"KEY": "value", ...}, ...}
'use strict'

const fs = require('fs')
const dotenv = require('dotenv')

const request = JSON.parse(fs.readFileSync(0, 'utf8'))
const parsed = {}
for (const file of request.files) {
  parsed[file] = dotenv.parse(fs.readFileSync(file))
}
fs.writeFileSync(request.out, JSON.stringify(parsed), { mode: 0o600 })
