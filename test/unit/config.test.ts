import { ConfigError, loadConfig } from '../../src/config';

function errorOf(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected loadConfig to throw');
}

describe('loadConfig', () => {
  it('gives local defaults for an empty environment', () => {
    const config = loadConfig({});
    expect(config.TEMPORAL_ADDRESS).toBe('127.0.0.1:7233');
    expect(config.MONGODB_URI).toBe('mongodb://127.0.0.1:27017/');
    expect(config.API_PORT).toBe(3000);
    expect(config.explicit).toEqual({ temporal: false, mongo: false, platform: false });
  });

  it('derives local addresses from the local port settings', () => {
    const config = loadConfig({ LOCAL_TEMPORAL_PORT: '7300', LOCAL_MONGO_PORT: '27100' });
    expect(config.TEMPORAL_ADDRESS).toBe('127.0.0.1:7300');
    expect(config.MONGODB_URI).toBe('mongodb://127.0.0.1:27100/');
  });

  it('uses given addresses as is and remembers they were given', () => {
    const config = loadConfig({ TEMPORAL_ADDRESS: 'temporal:7233', MONGODB_URI: 'mongodb://db:27017/?replicaSet=rs0' });
    expect(config.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(config.explicit.temporal).toBe(true);
    expect(config.explicit.mongo).toBe(true);
  });

  it('treats empty strings as unset', () => {
    expect(loadConfig({ API_PORT: '' }).API_PORT).toBe(3000);
  });

  it.each([
    ['API_PORT', 'eighty'],
    ['API_PORT', '70000'],
    ['TEMPORAL_ADDRESS', 'no-port-here'],
    ['MONGODB_URI', 'postgres://x'],
    ['LOG_LEVEL', 'loud'],
    ['NODE_ENV', 'staging'],
    ['EMULATOR_ENABLED', 'yes'],
    ['MONGODB_DB', 'bad.name'],
  ])('names %s when its value (%s) is wrong', (variable, value) => {
    const error = errorOf({ [variable]: value });
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.issues.map((i) => i.variable)).toEqual([variable]);
    expect(error.message).toContain(variable);
  });

  it('names every bad variable at once', () => {
    const error = errorOf({ API_PORT: 'x', EMULATOR_PORT: '-1' });
    expect(error.issues.map((i) => i.variable).sort()).toEqual(['API_PORT', 'EMULATOR_PORT']);
  });
});
