/** `vtd import`: not built yet (issue 6 work in progress). */
import { VtdError } from '../errors.js';

export const usage = '';

export function run(_args: string[]): number {
  throw new VtdError('UNSUPPORTED', 'import: not implemented yet');
}
