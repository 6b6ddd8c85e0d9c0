// `npm run parity`: does the default helper library answer as the web app does? Runs the
// conformance vectors (test/parity/vectors.ts) against the library as the host runs it and as the
// isolates rebuild it from source, with numeric and string klines; prints agree/differ per helper
// and exits non-zero when any helper differs.
import { helperFunctions, helpersSource, type HelperName } from '../src/screening/helpers.ts';
import { checkParity, formatParity } from '../test/parity/check.ts';
import { PARITY_VECTORS } from '../test/parity/vectors.ts';

type Library = Record<HelperName, (...args: never[]) => unknown>;

const rows = checkParity(PARITY_VECTORS, {
  host: helperFunctions('webapp'),
  isolate: new Function(helpersSource('webapp'))() as Library,
});
process.stdout.write(`Helper library 'webapp' against the web app (${PARITY_VECTORS.length} vectors; host and isolate source; numeric and string klines)\n\n`);
process.stdout.write(formatParity(rows) + '\n');
process.exitCode = rows.every((row) => row.agreed === row.runs) ? 0 : 1;
