// What the suites share within one run: the report, the timing options, and the walk image with its reference
// outcomes (built once, lazily, since building and checking them takes a few seconds).

import { buildWalkImage, type TableImage } from './image.js';
import type { TimingOptions } from './measure.js';
import type { Report } from './report.js';
import { createModel, ModelRunner, type Outcome } from './units.js';

export class BenchContext {
  private image?: TableImage;
  private expected?: Outcome[];

  constructor(readonly report: Report, readonly timing: TimingOptions) {}

  /** The shared walk image (bench/lib/image.ts buildWalkImage). */
  walkImage(): TableImage {
    this.image ??= buildWalkImage();
    return this.image;
  }

  /** The reference model's outcome for each request of the walk image: what every implementation must answer. */
  reference(): Outcome[] {
    this.expected ??= new ModelRunner(createModel(this.walkImage()), this.walkImage().requests).outcomes();
    return this.expected;
  }

  /** Progress, on stderr so that stdout holds only the tables and the JSON lines. */
  log(msg: string): void {
    process.stderr.write(`[bench] ${msg}\n`);
  }
}

/** A suite: adds its metrics to ctx.report and prints its table; throws to abort. */
export interface Suite {
  name: string;
  /** The issue area it informs, for the report. */
  about: string;
  run(ctx: BenchContext): void;
}
