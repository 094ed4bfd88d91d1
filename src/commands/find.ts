import type { Command } from 'commander';
import type { Ctx } from './context.js';

export function registerFind(_program: Command, _ctx: Ctx): void {}
