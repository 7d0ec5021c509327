// Lints texts that are never written to disk with the project's ESLint config, boundaries rules only
// and without type information, and prints the messages as JSON. Run as a child process because
// ESLint loads its config with import(), which jest's module sandbox does not allow.
// Input on stdin: [{ filePath, code }]; output: [[{ ruleId, message }]].
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const eslint = new ESLint({
  cwd: root,
  overrideConfigFile: path.join(root, 'eslint.config.mjs'),
  overrideConfig: { languageOptions: { parserOptions: { projectService: false, project: null } } },
  ruleFilter: ({ ruleId }) => ruleId.startsWith('boundaries/'),
});

let input = '';
for await (const chunk of process.stdin) input += chunk;
const out = [];
for (const { filePath, code } of JSON.parse(input)) {
  const [result] = await eslint.lintText(code, { filePath: path.join(root, filePath) });
  out.push(result.messages.map(({ ruleId, message }) => ({ ruleId, message })));
}
process.stdout.write(JSON.stringify(out));
