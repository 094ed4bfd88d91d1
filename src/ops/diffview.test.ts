import { describe, expect, it } from 'vitest';
import { boltDetailLines, jsonDetailLines, leaves } from './diffview.js';
import { jsonDiff } from './snapdiff.js';

describe('diff text view: values by their fields, changes by JSON path', () => {
  // libnetwork's record of a network (abridged from the after-build sample): the subnet is inside a JSON string.
  const network = {
    index: 2,
    json: {
      name: 'samplenet',
      ipamV4Config: '[{"PreferredPool":"172.30.0.0/24","SubPool":"","Gateway":"","AuxAddresses":null}]',
      labels: {},
      'com.docker/x': [1, 'two'],
    },
  };

  it('an added BoltDB value shows its decoded fields, the embedded JSON too (no 160-character cut)', () => {
    expect(boltDetailLines([{ change: 'added', path: ['libnetwork'], key: 'docker/network/v1.0/network/86da/', right: network }])).toEqual([
      '+ libnetwork / docker/network/v1.0/network/86da/',
      '    index = 2',
      '    json.name = "samplenet"',
      '    json.ipamV4Config<json>[0].PreferredPool = "172.30.0.0/24"',
      '    json.ipamV4Config<json>[0].SubPool = ""',
      '    json.ipamV4Config<json>[0].Gateway = ""',
      '    json.ipamV4Config<json>[0].AuxAddresses = null',
      '    json.labels = {}',
      '    json."com.docker/x"[0] = 1',
      '    json."com.docker/x"[1] = "two"',
    ]);
  });

  it('a changed BoltDB value shows the changes by path, inside embedded JSON too', () => {
    const after = { ...network, index: 3, json: { ...network.json, ipamV4Config: network.json.ipamV4Config.replace('172.30.0.0/24', '10.0.0.0/8') } };
    expect(boltDetailLines([{ change: 'changed', path: ['libnetwork'], key: 'k', left: network, right: after }])).toEqual([
      '~ libnetwork / k',
      '    ~ index: 2 → 3',
      '    ~ json.ipamV4Config<json>[0].PreferredPool: "172.30.0.0/24" → "10.0.0.0/8"',
    ]);
  });

  it('buckets are named, not dumped', () => {
    expect(boltDetailLines([{ change: 'added', path: ['v1'], key: 'moby', bucket: true, right: { bucket: true, sequence: 0 } }])).toEqual([
      '+ v1 / moby (bucket)',
    ]);
  });

  it('an added JSON file is its leaves; a changed one its changes', () => {
    expect(jsonDetailLines(jsonDiff(undefined, { a: { b: [true] }, c: 'x' }))).toEqual(['+ a.b[0] = true', '+ c = "x"']);
    expect(jsonDetailLines(jsonDiff({ a: 1, b: { c: 2 } }, { a: 1, b: { c: 3, d: null } }))).toEqual(['~ b.c: 2 → 3', '+ b.d = null']);
    expect(jsonDetailLines(jsonDiff({ a: 1 }, { a: { x: 1 } }))).toEqual(['- a = 1', '+ a.x = 1']);
  });

  it('a very long string is shortened with its length said', () => {
    const [[, v]] = leaves({ blob: 'y'.repeat(1000) }) as [[string, string]];
    expect(v).toBe(`"${'y'.repeat(300)}"… (1000 characters)`);
  });
});
