import type { Command } from 'commander';
import type { Ctx } from './context.js';

export function registerMount(_program: Command, _ctx: Ctx): void {}
