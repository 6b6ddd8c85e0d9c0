// Hand-written commentary for BENCHMARKS.md: what bounds each figure and what would move it. Figures themselves are generated.
export const COMMENTARY: Record<string, string> = {};
