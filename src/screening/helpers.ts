// The indicator library filters call as `helpers.*`, kept at this path for its importers: the code lives in ./helpers/ by indicator family, assembled in ./helpers/library.ts.
export * from './helpers/library.ts';
export type { HVNOptions, Kline, Series, VolumeNode } from './helpers/types.ts';
