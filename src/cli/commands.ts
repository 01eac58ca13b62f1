/**
 * The commands of `vtd`: one module each, loaded when used, exporting `usage`
 * and `run`. The order is `vtd help`'s. `help` itself is help.ts.
 */
export const COMMANDS: Record<string, () => Promise<{ usage: string; run(args: string[]): number | Promise<number> }>> = {
  replay: () => import('./replay.js'),
  lower: () => import('./lower.js'),
  import: () => import('./import.js'),
  gen: () => import('./gen.js'),
  compare: () => import('./compare.js'),
  conform: () => import('./conform.js'),
};
