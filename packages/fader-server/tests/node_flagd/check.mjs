// Drives the stock npm flagd provider (in-process mode) for test_flagd_sync_node.py.
//
// The provider is configured only through its own environment variables (FLAGD_RESOLVER,
// FLAGD_HOST, FLAGD_SYNC_PORT, FLAGD_SOURCE_SELECTOR...), exactly as an application would
// configure it for Fader. The test talks to this script over stdin/stdout, one JSON object per
// line: a command in, its answer out. The selector (a server SDK key) is never printed.
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { OpenFeature, ProviderEvents } from '@openfeature/server-sdk';
import { FlagdProvider } from '@openfeature/flagd-provider';

const selector = process.env.FLAGD_SOURCE_SELECTOR ?? '';
const events = { error: 0, stale: 0, changed: 0, ready: 0 };

function say(answer) {
  process.stdout.write(JSON.stringify(answer) + '\n');
}

const getters = {
  boolean: (client, key, ctx) => client.getBooleanDetails(key, false, ctx),
  string: (client, key, ctx) => client.getStringDetails(key, '', ctx),
  number: (client, key, ctx) => client.getNumberDetails(key, -1, ctx),
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function evaluate(client, { input, output, types }) {
  const contexts = JSON.parse(readFileSync(input, 'utf8'));
  const rows = [];
  let leaks = 0;
  for (const context of contexts) {
    const row = {};
    for (const [key, kind] of Object.entries(types)) {
      const details = await getters[kind](client, key, context);
      row[key] = [details.value, details.variant ?? null];
      if (selector && JSON.stringify(details.flagMetadata ?? {}).includes(selector)) leaks += 1;
    }
    rows.push(row);
  }
  writeFileSync(output, JSON.stringify(rows));
  return { done: rows.length, leaks };
}

async function awaitValue(client, { flag, context, expect, timeoutMs }) {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if ((await client.getBooleanValue(flag, !expect, context)) === expect) {
      return { seen: true, ms: performance.now() - started };
    }
    await sleep(2);
  }
  return { seen: false, ms: performance.now() - started };
}

async function main() {
  OpenFeature.addHandler(ProviderEvents.Error, () => (events.error += 1));
  OpenFeature.addHandler(ProviderEvents.Stale, () => (events.stale += 1));
  OpenFeature.addHandler(ProviderEvents.ConfigurationChanged, () => (events.changed += 1));
  OpenFeature.addHandler(ProviderEvents.Ready, () => (events.ready += 1));
  try {
    await OpenFeature.setProviderAndWait(new FlagdProvider());
  } catch (error) {
    say({ ready: false, error: String(error?.message ?? error) });
    process.exit(1);
  }
  const client = OpenFeature.getClient();
  say({ ready: true });
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const command = JSON.parse(line);
    if (command.op === 'evaluate') say(await evaluate(client, command));
    else if (command.op === 'await') say(await awaitValue(client, command));
    else if (command.op === 'value') {
      say({ value: await client.getBooleanValue(command.flag, command.fallback, command.context) });
    } else if (command.op === 'events') say({ ...events });
    else if (command.op === 'close') break;
    else say({ error: `unknown op ${command.op}` });
  }
  await OpenFeature.close();
  say({ closed: true });
  process.exit(0);
}

main();
