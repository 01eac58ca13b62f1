/**
 * `npm test` sets up what the tests need: scripts/install-test-deps.sh installs
 * QEMU, binutils and xz with apt-get when one is missing, creates QEMU 10's
 * Debian 13 root with debootstrap when it is absent, and when it cannot,
 * scripts/test.mjs stops before any test with a non-zero exit and the command
 * to run. Each case runs the script with PATH set to a folder of stand-ins, so
 * which programs exist, whether this is root (a stand-in `id`), and what
 * `sudo`, `apt-get`, `debootstrap` and `chroot` do are chosen by the test;
 * the QEMU 10 root is a folder of the test's (VTD_QEMU10_ROOT); nothing is
 * installed.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

const SCRIPT = join(ROOT, 'scripts', 'install-test-deps.sh');
const ALL = ['qemu-system-x86_64', 'as', 'ld', 'xz'];

const made: string[] = [];
after(() => { for (const d of made) rmSync(d, { recursive: true, force: true }); });

/**
 * The QEMU 10 root: present (its QEMU says 10.0.99), absent, partial (a
 * folder without QEMU, as a failed debootstrap leaves), or old (its QEMU
 * says 9.2.0).
 */
type Root10 = 'present' | 'absent' | 'partial' | 'old';
interface Machine {
  uid: number; has?: string[]; sudo?: 'none' | 'password' | 'passwordless'; apt?: 'none' | 'fails' | 'installs';
  root10?: Root10; debootstrap?: 'works' | 'fails';
}

const QEMU10 = 'echo "QEMU emulator version 10.0.99 (stand-in)"';

/** Puts a stand-in QEMU into a root folder (DIR/usr/bin/qemu-system-x86_64). */
function rootQemu(root: string, version: string): void {
  mkdirSync(join(root, 'usr', 'bin'), { recursive: true });
  writeFileSync(join(root, 'usr', 'bin', 'qemu-system-x86_64'), `#!/bin/sh\necho "QEMU emulator version ${version} (stand-in)"\n`);
  chmodSync(join(root, 'usr', 'bin', 'qemu-system-x86_64'), 0o755);
}

/**
 * A folder of stand-in programs for `machine`; apt-get, sudo and debootstrap
 * log their calls to bin/calls. `env` runs the script on that machine.
 */
function machine(m: Machine): { bin: string; calls: string; root10: string; env: NodeJS.ProcessEnv } {
  const bin = mkdtempSync(join(tmpdir(), 'vtd-setup-'));
  made.push(bin);
  const calls = join(bin, 'calls');
  const stub = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  symlinkSync('/usr/bin/head', join(bin, 'head'));
  for (const tool of ['ls', 'grep']) symlinkSync(`/bin/${tool}`, join(bin, tool));
  stub('id', `[ "$1" = -u ] && echo ${m.uid}`);
  // chroot DIR PROG ARGS: runs DIR's PROG (a stand-in QEMU), refusing like the real one when not root.
  stub('chroot', `[ ${m.uid} = 0 ] || { echo "chroot: cannot change root directory to '$1': Operation not permitted" >&2; exit 125; }\nr=$1; p=$2; shift 2; exec "$r/usr/bin/$p" "$@"`);
  const root10 = join(bin, 'qemu10-root');
  const r10 = m.root10 ?? 'present';
  if (r10 === 'present') rootQemu(root10, '10.0.99');
  if (r10 === 'old') rootQemu(root10, '9.2.0');
  if (r10 === 'partial') mkdirSync(join(root10, 'debootstrap'), { recursive: true });
  if (m.debootstrap) {
    stub('debootstrap', `echo "debootstrap $*" >> ${calls}\n${m.debootstrap === 'fails' ? 'exit 1' : `/bin/mkdir -p "$4/usr/bin" && printf '#!/bin/sh\\n${QEMU10}\\n' > "$4/usr/bin/qemu-system-x86_64" && /bin/chmod 755 "$4/usr/bin/qemu-system-x86_64"`}`);
  }
  const qemu = 'echo "QEMU emulator version 7.2.99 (stand-in)"';
  for (const c of m.has ?? []) stub(c, c === 'qemu-system-x86_64' ? qemu : 'exit 0');
  if (m.sudo === 'password') stub('sudo', `echo "sudo $*" >> ${calls}; exit 1`);
  if (m.sudo === 'passwordless') stub('sudo', `echo "sudo $*" >> ${calls}; [ "$1" = -n ] && shift; "$@"`);
  if (m.apt === 'fails') stub('apt-get', `echo "apt-get $*" >> ${calls}; exit 100`);
  // apt's own list of repositories: the mirror debootstrap must use, then the security archive.
  const indextargets = '[ "$1" = indextargets ] && { echo http://mirror.example/debian-security/; echo http://mirror.example/debian/; exit 0; }';
  if (m.apt === 'installs') {
    // What the packages would bring, kept aside until apt-get "installs" them.
    const pkgs = join(bin, '.packages');
    mkdirSync(pkgs);
    for (const c of ALL) stub(join('.packages', c), c === 'qemu-system-x86_64' ? qemu : 'exit 0');
    stub('apt-get', `${indextargets}\necho "apt-get $*" >> ${calls}\n[ "$1" = install ] && /bin/cp -p ${pkgs}/* ${bin}/\nexit 0`);
  }
  if (m.apt === undefined && m.debootstrap) stub('apt-get', `${indextargets}\necho "apt-get $*" >> ${calls}; exit 0`);
  return { bin, calls, root10, env: { PATH: bin, VTD_QEMU10_ROOT: root10 } };
}

function run(bin: string, args: string[] = []) {
  return spawnSync('/bin/sh', [SCRIPT, ...args], { cwd: ROOT, encoding: 'utf8', env: { PATH: bin, VTD_QEMU10_ROOT: join(bin, 'qemu10-root') }, timeout: 30_000 });
}

test('everything present: exits 0 at once, names QEMU, calls neither sudo nor apt-get', () => {
  const { bin, calls } = machine({ uid: 0, has: ALL, sudo: 'password', apt: 'fails' });
  const r = run(bin);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /test dependencies present \(QEMU emulator version 7\.2\.99/);
  assert.match(r.stdout, /QEMU emulator version 10\.0\.99 \(stand-in\) in \S+qemu10-root/);
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

test('not root, password-less sudo: installs through sudo -n (then says QEMU 10 under chroot needs root)', () => {
  const { bin, calls } = machine({ uid: 1000, sudo: 'passwordless', apt: 'installs' });
  const r = run(bin);
  assert.match(r.stdout, /installing qemu-system-x86 binutils xz-utils with apt-get/);
  assert.match(r.stdout, /installed: QEMU emulator version 7\.2\.99/);
  assert.match(readFileSync(calls, 'utf8'), /\nsudo -n apt-get update -q\n/);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /runs under chroot, which needs root \(this is user 1000\): run the tests as root/);
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
  assert.equal(run(machine({ uid: 0, has: ALL }).bin, ['--check']).status, 0);
});

test('npm test (scripts/test.mjs) stops before any test when the setup cannot install', () => {
  const { bin } = machine({ uid: 1000 });
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'test.mjs'), 'test/fixtures/setup/probe.test.ts'],
    { cwd: ROOT, encoding: 'utf8', env: { PATH: bin, VTD_QEMU10_ROOT: join(bin, 'qemu10-root') }, timeout: 60_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /sudo sh scripts\/install-test-deps\.sh/);
  assert.match(r.stderr, /npm test: stopped before running any test/);
  assert.equal(r.stdout.includes('PROBE-TEST-RAN'), false, 'no test may run');
});

test('the runner does run tests once the setup succeeds (the probe above would have been seen)', () => {
  const { bin } = machine({ uid: 0, has: ALL });
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'test.mjs'), 'test/fixtures/setup/probe.test.ts'],
    { cwd: ROOT, encoding: 'utf8', env: { PATH: bin, VTD_QEMU10_ROOT: join(bin, 'qemu10-root') }, timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /PROBE-TEST-RAN/);
});

test('VTD_QEMU names the QEMU to check; one that cannot run is an error, never an install', () => {
  const { bin, calls } = machine({ uid: 0, has: ['as', 'ld', 'xz', 'qemu-system-x86_64'], apt: 'installs' });
  const env = (q: string) => ({ PATH: bin, VTD_QEMU: q, VTD_QEMU10_ROOT: join(bin, 'qemu10-root') });
  const bad = spawnSync('/bin/sh', [SCRIPT], { cwd: ROOT, encoding: 'utf8', env: env('/nonexistent/qemu'), timeout: 30_000 });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /VTD_QEMU=\/nonexistent\/qemu is not a program that can be run/);
  assert.equal(existsSync(calls), false);
  const good = spawnSync('/bin/sh', [SCRIPT], { cwd: ROOT, encoding: 'utf8', env: env(join(bin, 'qemu-system-x86_64')), timeout: 30_000 });
  assert.equal(good.status, 0, good.stderr);
  assert.match(good.stdout, /QEMU emulator version 7\.2\.99/);
});

test('QEMU 10 root absent: installs debootstrap with apt-get, then debootstraps trixie from apt\'s own mirror', () => {
  const { bin, calls, env } = machine({ uid: 0, has: ['qemu-system-x86_64', 'as', 'ld', 'xz'], root10: 'absent', debootstrap: 'works', apt: 'installs' });
  // debootstrap is "missing" until apt-get installs it: keep it aside like the packages.
  renameSync(join(bin, 'debootstrap'), join(bin, '.packages', 'debootstrap'));
  const r = spawnSync('/bin/sh', [SCRIPT], { cwd: ROOT, encoding: 'utf8', env, timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  const log = readFileSync(calls, 'utf8');
  assert.equal(log, 'apt-get update -q\napt-get install -y -q --no-install-recommends debootstrap\n'
    + `debootstrap --variant=minbase --include=qemu-system-x86 trixie ${join(bin, 'qemu10-root')} http://mirror.example/debian\n`);
  assert.match(r.stdout, /installed: QEMU emulator version 10\.0\.99 \(stand-in\) in /);
  const again = spawnSync('/bin/sh', [SCRIPT], { cwd: ROOT, encoding: 'utf8', env, timeout: 30_000 });
  assert.match(again.stdout, /test dependencies present .*10\.0\.99/, 'a second run finds the root');
});

test('QEMU 10 root absent, debootstrap present: no apt-get install, only debootstrap', () => {
  const { calls, env } = machine({ uid: 0, has: ALL, root10: 'absent', debootstrap: 'works' });
  const r = spawnSync('/bin/sh', [SCRIPT], { cwd: ROOT, encoding: 'utf8', env, timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(readFileSync(calls, 'utf8'), /^debootstrap --variant=minbase --include=qemu-system-x86 trixie \S+ http:\/\/mirror\.example\/debian\n$/);
});

test('QEMU 10 root: a failing debootstrap, a half-made root, a root with another QEMU, --check: exit 1 naming what to do', () => {
  const fails = machine({ uid: 0, has: ALL, root10: 'absent', debootstrap: 'fails' });
  let r = spawnSync('/bin/sh', [SCRIPT], { cwd: ROOT, encoding: 'utf8', env: fails.env, timeout: 30_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /the tests need QEMU 10 \(a Debian 13 root at \S+\).*debootstrap failed \(exit 1\); remove what it left/);

  const partial = machine({ uid: 0, has: ALL, root10: 'partial', debootstrap: 'works' });
  r = spawnSync('/bin/sh', [SCRIPT], { cwd: ROOT, encoding: 'utf8', env: partial.env, timeout: 30_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /qemu10-root exists but holds no QEMU .*remove it \(rm -rf \S+qemu10-root\)/);
  assert.equal(existsSync(partial.calls), false, 'nothing is written into a directory that is not an absent or empty root');

  const old = machine({ uid: 0, has: ALL, root10: 'old' });
  r = spawnSync('/bin/sh', [SCRIPT], { cwd: ROOT, encoding: 'utf8', env: old.env, timeout: 30_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /does not say QEMU 10\.x \(it says: QEMU emulator version 9\.2\.0/);

  const check = machine({ uid: 0, has: ALL, root10: 'absent', debootstrap: 'works' });
  r = spawnSync('/bin/sh', [SCRIPT, '--check'], { cwd: ROOT, encoding: 'utf8', env: check.env, timeout: 30_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /QEMU 10 \(a Debian 13 root at .*--check installs nothing/);
  assert.equal(existsSync(check.calls), false);
});

test('QEMU 10 root present but not root: says chroot needs root, never installs', () => {
  const { calls, env } = machine({ uid: 1000, has: ALL, sudo: 'passwordless', apt: 'installs' });
  // (with everything else present, nothing else is said)
  const r = spawnSync('/bin/sh', [SCRIPT], { cwd: ROOT, encoding: 'utf8', env, timeout: 30_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /runs under chroot, which needs root \(this is user 1000\)/);
  assert.equal(existsSync(calls), false);
});
