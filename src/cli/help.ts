/**
 * `vtd help [COMMAND]`: every command's options, or one command's.
 */
import { COMMANDS } from './commands.js';

const USAGE_TAIL = `  help [COMMAND]         this text, or one command's options (also: vtd COMMAND -h, --help)
  --version              the version of vtd

Exit status: 0 success (also when the reader of standard output goes away);
2 bad usage, malformed input (the message names the line) or an output path
that cannot be used; 1 anything else (an unsupported feature, a core trap, a
failed write). Output files are written whole or not at all.
`;

export const SHORT_USAGE = `usage: vtd <command> [options]
commands: replay, lower, import, gen, compare, conform, help
'vtd help' lists every option; 'vtd help COMMAND' or 'vtd COMMAND --help' one command's
`;

/** Every command's options. */
export async function usageText(): Promise<string> {
  const parts = await Promise.all(Object.values(COMMANDS).map(async (m) => (await m()).usage));
  return `usage: vtd <command> [options]\n\ncommands:\n${parts.join('')}${USAGE_TAIL}`;
}

/** One command's options. */
export async function commandUsage(cmd: string): Promise<string> {
  return `usage: vtd ${cmd} ...\n${(await COMMANDS[cmd]()).usage}`;
}
