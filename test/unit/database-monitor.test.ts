import { EventEmitter } from 'node:events';
import type { MongoClient } from 'mongodb';
import { MONITOR_STALL_MS, watchMonitor } from '../../src/storage/mongo';

/** The watchdog on the driver's server monitor: reports keep it quiet, silence calls onStall. */
describe('the database monitor watchdog', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('stays quiet while the monitor reports, up or down', () => {
    const client = new EventEmitter();
    const onStall = jest.fn();
    const timer = watchMonitor(client as unknown as MongoClient, onStall);
    for (let t = 0; t < 3 * MONITOR_STALL_MS; t += 10_000) {
      client.emit(t % 20_000 === 0 ? 'serverHeartbeatFailed' : 'serverHeartbeatSucceeded');
      jest.advanceTimersByTime(10_000);
    }
    clearInterval(timer);
    expect(onStall).not.toHaveBeenCalled();
  });

  it('waits for the first report (a lazy client has no monitor before its first operation)', () => {
    const client = new EventEmitter();
    const onStall = jest.fn();
    const timer = watchMonitor(client as unknown as MongoClient, onStall);
    jest.advanceTimersByTime(3 * MONITOR_STALL_MS);
    clearInterval(timer);
    expect(onStall).not.toHaveBeenCalled();
  });

  it('calls onStall once the monitor has been silent for MONITOR_STALL_MS', () => {
    const client = new EventEmitter();
    const onStall = jest.fn();
    const timer = watchMonitor(client as unknown as MongoClient, onStall);
    client.emit('serverHeartbeatStarted');
    jest.advanceTimersByTime(MONITOR_STALL_MS - 5_000);
    expect(onStall).not.toHaveBeenCalled();
    jest.advanceTimersByTime(5_000);
    clearInterval(timer);
    expect(onStall).toHaveBeenCalledWith(expect.any(Number));
    expect(onStall.mock.calls[0]![0]).toBeGreaterThanOrEqual(MONITOR_STALL_MS);
  });
});
