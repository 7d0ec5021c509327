// Lints files with the project's ESLint config as it is (type-aware rules included) and prints the
// messages as JSON. Run as a child process because ESLint loads its config with import(), which
// jest's module sandbox does not allow. Input on stdin: [absolute file path]; output:
// [{ filePath, messages: [{ ruleId, line, message }] }].
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const eslint = new ESLint({ cwd: root, overrideConfigFile: path.join(root, 'eslint.config.mjs') });

let input = '';
for await (const chunk of process.stdin) input += chunk;
const results = await eslint.lintFiles(JSON.parse(input));
process.stdout.write(
  JSON.stringify(results.map(({ filePath, messages }) => ({ filePath, messages: messages.map(({ ruleId, line, message }) => ({ ruleId, line, message })) }))),
);
