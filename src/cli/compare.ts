/**
 * `vtd compare A.json B.json`: compares two replay reports (`vtd replay
 * --report`) run by run and prints a table (metric, A, B, B/A, a mark where
 * they differ by more than the threshold); `--html` also writes one HTML
 * report holding the runs of both. Exit status 0 whatever the differences;
 * 2 for bad usage or a report that cannot be read (the message names the
 * file and what is wrong).
 */
import { readFileSync } from 'node:fs';
import { VtdError } from '../errors.js';
import { AtomicFile, parseCommandArgs } from './util.js';
import { combinedPairs, combineReports, compareReports, DEFAULT_THRESHOLD, formatComparison, parseReport } from '../report/compare.js';
import { renderHtml } from '../report/html.js';
import type { ReplayReport } from '../report/types.js';

export const usage = `  compare A.json B.json  compare two replay reports (vtd replay --report) run by run: run i of A with
                         run i of B (or the only run of each); every metric, A, B and B/A, marked * where
                         they differ by more than the threshold
      --threshold P      mark differences of more than P percent [${DEFAULT_THRESHOLD * 100}]
      --html FILE        also write one HTML report holding the runs of both (labels A: and B:),
                         whole or not at all
`;

interface Args { files: string[]; threshold: number; html?: string }

function parseArgs(args: string[]): Args {
  const a = parseCommandArgs('compare', args, { threshold: { type: 'string' }, html: { type: 'string' } });
  let threshold = DEFAULT_THRESHOLD;
  const t = a.values.threshold;
  if (typeof t === 'string') {
    if (!/^\d+(\.\d+)?$/.test(t)) throw new VtdError('ARGUMENT', `compare: --threshold takes a non-negative percentage, got ${JSON.stringify(t)}`);
    threshold = Number(t) / 100;
  }
  const files = a.positional;
  if (files.length !== 2) throw new VtdError('ARGUMENT', `compare takes two report files (A.json B.json), got ${files.length}`);
  return { files, threshold, html: typeof a.values.html === 'string' ? a.values.html : undefined };
}

/** Reads and checks one report; problems name the file. */
function load(file: string): ReplayReport {
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new VtdError('ARGUMENT', `${file}: cannot read (${err.code ?? err.message})`, { file });
  }
  return parseReport(text, file);
}

export function run(args: string[]): number {
  const a = parseArgs(args);
  if (a.files[0] === '-' && a.files[1] === '-') throw new VtdError('ARGUMENT', 'compare: only one of the reports can be standard input');
  // The HTML file is opened first: a path that cannot be written fails before anything is read.
  const htmlOut = a.html !== undefined ? new AtomicFile(a.html) : undefined;
  let ra: ReplayReport, rb: ReplayReport;
  try {
    ra = load(a.files[0]);
    rb = load(a.files[1]);
  } catch (e) {
    // A report that cannot be read is not a usage mistake: say what is wrong, without the usage text.
    if (e instanceof VtdError) {
      process.stderr.write(`vtd: compare: ${e.message}\n`);
      htmlOut?.abort();
      return 2;
    }
    throw e;
  }
  const c = compareReports(ra, rb, { threshold: a.threshold, nameA: a.files[0], nameB: a.files[1] });
  // One short table: a reader gone away (EPIPE) is handled by src/cli/main.ts's standard-output error handler.
  process.stdout.write(formatComparison(c));
  if (htmlOut) {
    const note = `A: ${a.files[0]} (trace ${ra.trace.name}, ${ra.runs.length} run${ra.runs.length > 1 ? 's' : ''}); `
      + `B: ${a.files[1]} (trace ${rb.trace.name}, ${rb.runs.length} run${rb.runs.length > 1 ? 's' : ''})`;
    htmlOut.write(renderHtml(combineReports(ra, rb), { pairs: combinedPairs(ra, rb), note, comparison: [a.files[0], a.files[1]] }));
    htmlOut.commit();
  }
  return 0;
}
