import type { OpenAPIObject } from '@nestjs/swagger';
import { createApp } from '../../src/app.setup';
import { loadConfig } from '../../src/config/keel-config';
import { keelOpenApiDocument } from '../../src/index';
import { BASE_ENV, type Env, type ExtraImports } from './app';

/**
 * The document /docs-json serves, built from an initialised app that never opens a port (as a
 * build step would generate it).
 */
export async function buildDocument(env: Env = {}, extraImports: ExtraImports = []): Promise<OpenAPIObject> {
  const config = loadConfig({ ...BASE_ENV, ...env });
  const app = await createApp(config, extraImports);
  try {
    await app.init();
    return keelOpenApiDocument(app);
  } finally {
    await app.close();
  }
}
