#!/usr/bin/env node
import { main } from '../dist/cli/main.js';
Promise.resolve(main(process.argv.slice(2))).then((code) => {
  process.exitCode = code;
});
