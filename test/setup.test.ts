/**
 * `npm test` sets up what the tests need: scripts/install-test-deps.sh installs
 * QEMU, binutils and xz with apt-get when one is missing, and when it cannot,
 * scripts/test.mjs stops before any test with a non-zero exit and the command
 * to run. Each case runs the script with PATH set to a folder of stand-ins, so
 * which programs exist, whether this is root (a stand-in `id`), and what
 * `sudo` and `apt-get` do are chosen by the test; nothing is installed.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

const SCRIPT = join(ROOT, 'scripts', 'install-test-deps.sh');
const ALL = ['qemu-system-x86_64', 'as', 'ld', 'xz'];

const made: string[] = [];
after(() => { for (const d of made) rmSync(d, { recursive: true, force: true }); });

interface Machine { uid: number; has?: string[]; sudo?: 'none' | 'password' | 'passwordless'; apt?: 'none' | 'fails' | 'installs' }

/** A folder of stand-in programs for `machine`; apt-get and sudo log their calls to bin/calls. */
function machine(m: Machine): { bin: string; calls: string } {
  const bin = mkdtempSync(join(tmpdir(), 'vtd-setup-'));
  made.push(bin);
  const calls = join(bin, 'calls');
  const stub = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  symlinkSync('/usr/bin/head', join(bin, 'head'));
  stub('id', `[ "$1" = -u ] && echo ${m.uid}`);
  const qemu = 'echo "QEMU emulator version 7.2.99 (stand-in)"';
  for (const c of m.has ?? []) stub(c, c === 'qemu-system-x86_64' ? qemu : 'exit 0');
  if (m.sudo === 'password') stub('sudo', `echo "sudo $*" >> ${calls}; exit 1`);
  if (m.sudo === 'passwordless') stub('sudo', `echo "sudo $*" >> ${calls}; [ "$1" = -n ] && shift; "$@"`);
  if (m.apt === 'fails') stub('apt-get', `echo "apt-get $*" >> ${calls}; exit 100`);
  if (m.apt === 'installs') {
    // What the packages would bring, kept aside until apt-get "installs" them.
    const pkgs = join(bin, '.packages');
    mkdirSync(pkgs);
    for (const c of ALL) stub(join('.packages', c), c === 'qemu-system-x86_64' ? qemu : 'exit 0');
    stub('apt-get', `echo "apt-get $*" >> ${calls}\n[ "$1" = install ] && /bin/cp -p ${pkgs}/* ${bin}/\nexit 0`);
  }
  return { bin, calls };
}

function run(bin: string, args: string[] = []) {
  return spawnSync('/bin/sh', [SCRIPT, ...args], { cwd: ROOT, encoding: 'utf8', env: { PATH: bin }, timeout: 30_000 });
}

test('everything present: exits 0 at once, names QEMU, calls neither sudo nor apt-get', () => {
  const { bin, calls } = machine({ uid: 1000, has: ALL, sudo: 'password', apt: 'fails' });
  const r = run(bin);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /test dependencies present \(QEMU emulator version 7\.2\.99/);
  assert.equal(existsSync(calls), false);
});

test('not root and no sudo: exits 1 before apt-get, naming what is missing and the exact command', () => {
  const { bin, calls } = machine({ uid: 1000, has: ['as', 'ld'], apt: 'installs' });
  const r = run(bin);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /the tests need qemu-system-x86_64 xz, which this machine does not have/);
  assert.match(r.stderr, /installing them needs root \(this is user 1000/);
  assert.match(r.stderr, /Debian packages: qemu-system-x86 xz-utils/);
  assert.match(r.stderr, /\n {4}sudo sh scripts\/install-test-deps\.sh\n/);
  assert.equal(existsSync(calls), false, 'apt-get must not run');
});

test('not root, sudo wants a password: never prompts, exits 1 with the command', () => {
  const { bin, calls } = machine({ uid: 1000, sudo: 'password', apt: 'installs' });
  const r = run(bin);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /qemu-system-x86_64 as ld xz/);
  assert.match(r.stderr, /sudo sh scripts\/install-test-deps\.sh/);
  assert.match(r.stderr, /without password-less sudo/);
});

test('not root, password-less sudo: installs through sudo -n', () => {
  const { bin } = machine({ uid: 1000, sudo: 'passwordless', apt: 'installs' });
  const r = run(bin);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /installing qemu-system-x86 binutils xz-utils with apt-get/);
  assert.match(r.stdout, /installed: QEMU emulator version 7\.2\.99/);
});

test('root: installs only the missing packages, without recommends, then finds them', () => {
  const { bin, calls } = machine({ uid: 0, has: ['xz'], apt: 'installs' });
  const r = run(bin);
  assert.equal(r.status, 0, r.stderr);
  const log = spawnSync('/bin/cat', [calls], { encoding: 'utf8' }).stdout;
  assert.equal(log, 'apt-get update -q\napt-get install -y -q --no-install-recommends qemu-system-x86 binutils\n');
  assert.equal(run(bin).stdout.includes('test dependencies present'), true, 'a second run finds everything');
});

test('root, apt-get failing: exits 1 with the reason and the command (without sudo)', () => {
  const { bin } = machine({ uid: 0, apt: 'fails' });
  const r = run(bin);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /apt-get update failed \(exit 100\)/);
  assert.match(r.stderr, /\n {4}sh scripts\/install-test-deps\.sh\n/);
});

test('root without apt-get: exits 1 saying so', () => {
  const { bin } = machine({ uid: 0 });
  const r = run(bin);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /there is no apt-get here/);
});

test('--check reports only: exit 1 and the command when something is missing, apt-get untouched', () => {
  const { bin, calls } = machine({ uid: 0, has: ['as', 'ld', 'xz'], apt: 'installs' });
  const r = run(bin, ['--check']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /the tests need qemu-system-x86_64/);
  assert.equal(existsSync(calls), false);
  assert.equal(run(machine({ uid: 1000, has: ALL }).bin, ['--check']).status, 0);
});

test('npm test (scripts/test.mjs) stops before any test when the setup cannot install', () => {
  const { bin } = machine({ uid: 1000 });
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'test.mjs'), 'test/fixtures/setup/probe.test.ts'],
    { cwd: ROOT, encoding: 'utf8', env: { PATH: bin }, timeout: 60_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /sudo sh scripts\/install-test-deps\.sh/);
  assert.match(r.stderr, /npm test: stopped before running any test/);
  assert.equal(r.stdout.includes('PROBE-TEST-RAN'), false, 'no test may run');
});

test('the runner does run tests once the setup succeeds (the probe above would have been seen)', () => {
  const { bin } = machine({ uid: 1000, has: ALL });
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'test.mjs'), 'test/fixtures/setup/probe.test.ts'],
    { cwd: ROOT, encoding: 'utf8', env: { PATH: bin }, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /PROBE-TEST-RAN/);
});

test('VTD_QEMU names the QEMU to check; one that cannot run is an error, never an install', () => {
  const { bin, calls } = machine({ uid: 0, has: ['as', 'ld', 'xz', 'qemu-system-x86_64'], apt: 'installs' });
  const env = (q: string) => ({ PATH: bin, VTD_QEMU: q });
  const bad = spawnSync('/bin/sh', [SCRIPT], { cwd: ROOT, encoding: 'utf8', env: env('/nonexistent/qemu'), timeout: 30_000 });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /VTD_QEMU=\/nonexistent\/qemu is not a program that can be run/);
  assert.equal(existsSync(calls), false);
  const good = spawnSync('/bin/sh', [SCRIPT], { cwd: ROOT, encoding: 'utf8', env: env(join(bin, 'qemu-system-x86_64')), timeout: 30_000 });
  assert.equal(good.status, 0, good.stderr);
  assert.match(good.stdout, /QEMU emulator version 7\.2\.99/);
});
