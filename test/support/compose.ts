import { buildServeConfig, type ServeConfig } from "../../src/config/serve-config.js";

/**
 * A ServeConfig for a daemon composed in process (tests that inject a clock):
 * the same defaults `credbroker serve` gets, on 127.0.0.1 port 0, in `dataDir`.
 */
export function testConfig(dataDir: string, patch: Partial<ServeConfig> = {}): ServeConfig {
  return {
    ...buildServeConfig({ listen: "127.0.0.1:0", dataDir, shutdownGrace: "1" }, {}),
    ...patch,
  };
}
