// Differential conformance against the real QEMU 7.2 and QEMU 10 intel-iommu,
// on fixed seed sets: every generated trace is replayed through our core and
// through QEMU (two at a time) and compared; every difference must be a known
// deviation of that QEMU version (src/conform/deviations.ts). A new one fails
// the test with its shrunk trace in the message, ready to file.
//
// QEMU is required: without it this test FAILS (npm test installs it with
// scripts/install-test-deps.sh). More seeds on demand:
//   vtd conform --qemu [--qemu-version 10] --seeds 10000 [--hostile]
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { qemuAvailable, type QemuVersion } from '../../src/qemu/harness.js';
import { formatSummary, runConformance, runText, type ConformSummary } from '../../src/conform/run.js';
import { traceForSeed } from '../../src/conform/gen/index.js';
import { CONFORMANCE } from '../helpers.js';

function requireQemu(version: QemuVersion = '7.2'): void {
  const a = qemuAvailable({ version });
  assert.ok(a.ok, `QEMU is required for the differential conformance tests and is not usable: ${a.ok ? '' : a.reason}`);
}

/** The CI seed sets. Their run time is not asserted (speed is measured in bench/); the timeout only stops a hang. */
const DRIVER_SEEDS = 200, HOSTILE_SEEDS = 100;
/** QEMU 10 starts in about 0.5 s (7.2: 0.1 s), so its set is smaller. */
const DRIVER_SEEDS_10 = 100, HOSTILE_SEEDS_10 = 50;

function failureReport(s: ConformSummary): string {
  const parts = [formatSummary(s)];
  for (const r of s.results) if (r.filed) parts.push(r.filed);
  return parts.join('\n\n');
}

describe('vtd conform against QEMU 7.2 (fixed seeds)', { concurrency: 1 }, () => {
  test(`${DRIVER_SEEDS} driver-like and ${HOSTILE_SEEDS} hostile traces: every difference is a known deviation`, { timeout: 1_200_000 }, async (t) => {
    requireQemu();
    const driver = await runConformance({ seeds: DRIVER_SEEDS, firstSeed: 1, jobs: 2, shrinkRuns: 150 });
    const hostile = await runConformance({ seeds: HOSTILE_SEEDS, firstSeed: 1, hostile: true, jobs: 2, shrinkRuns: 150 });
    t.diagnostic(formatSummary(driver));
    t.diagnostic(formatSummary(hostile));
    for (const s of [driver, hostile]) {
      assert.equal(s.errors, 0, failureReport(s));
      assert.equal(s.new, 0, failureReport(s));
      assert.equal(s.seeds, s.agree + s.known);
    }
    // The machinery is exercised: some traces agree outright, some show known deviations.
    assert.ok(driver.agree > 0 && driver.known > 0);
    assert.ok(Object.keys(driver.deviations).includes('ir-fault-not-recorded'));
  });

  test('a trace that makes QEMU 7.2 abort on a known assertion is that deviation, not an error', async () => {
    requireQemu();
    const text = readFileSync(join(CONFORMANCE, 'qemu-aborts', 'wait-sw-and-if.jsonl'), 'utf8');
    const r = await runText(0, text);
    assert.equal(r.status, 'known', r.error);
    assert.deepEqual(r.verdict?.diverged?.id, 'wait-sw-and-if-abort');
  });
});

describe('vtd conform against QEMU 10 (fixed seeds)', { concurrency: 1 }, () => {
  test(`${DRIVER_SEEDS_10} driver-like and ${HOSTILE_SEEDS_10} hostile traces: every difference is a known QEMU 10 deviation`, { timeout: 1_200_000 }, async (t) => {
    requireQemu('10');
    const qemu = { version: '10' as const };
    const driver = await runConformance({ seeds: DRIVER_SEEDS_10, firstSeed: 1, jobs: 2, shrinkRuns: 150, qemu });
    const hostile = await runConformance({ seeds: HOSTILE_SEEDS_10, firstSeed: 1, hostile: true, jobs: 2, shrinkRuns: 150, qemu });
    t.diagnostic(formatSummary(driver));
    t.diagnostic(formatSummary(hostile));
    for (const s of [driver, hostile]) {
      assert.match(s.qemuVersion ?? '', /^10\./);
      assert.equal(s.errors, 0, failureReport(s));
      assert.equal(s.new, 0, failureReport(s));
      assert.equal(s.seeds, s.agree + s.known);
    }
    assert.ok(driver.agree > 0 && driver.known > 0);
    // QEMU 10 records interrupt faults: 7.2's deviation never appears, and its own does.
    assert.ok(!Object.keys(driver.deviations).includes('ir-fault-not-recorded'));
    // About half the driver-like seeds are scalable-mode traces (sm, with flts at aw 48 or pasid), and they agree
    // up to QEMU 10's scalable-mode deviations.
    const sm = Array.from({ length: DRIVER_SEEDS_10 }, (_, i) => traceForSeed(i + 1, { scalable: true }).header.iommu).filter((c) => c.sm);
    assert.ok(sm.length >= 30 && sm.some((c) => c.flts), `${sm.length} scalable-mode traces`);
    assert.ok(Object.keys(driver.deviations).includes('sm-legacy-fault-reasons'), Object.keys(driver.deviations).join(' '));
  });

  test('the trace that makes QEMU 7.2 abort (wait with SW and IF) runs to the end on QEMU 10 and agrees', async () => {
    requireQemu('10');
    const text = readFileSync(join(CONFORMANCE, 'qemu-aborts', 'wait-sw-and-if.jsonl'), 'utf8');
    const r = await runText(0, text, { version: '10' });
    assert.equal(r.status, 'agree', r.error ?? JSON.stringify(r.verdict?.difference));
  });
});
