// ESLint for the browser code: the web app (web/), its browser checks (web/tests/, run in node)
// and the classroom device's screen (capture/screen/). Run by scripts/test.sh from the repository
// root: `web/node_modules/.bin/eslint --config web/eslint.config.mjs web capture/screen`.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["**/node_modules/**", "web/vendor/**"] },
  js.configs.recommended,
  {
    files: ["**/*.js", "**/*.mjs"],
    languageOptions: {
      ecmaVersion: 2024,
      sourceType: "module",
      globals: { ...globals.browser },
    },
    rules: {
      "no-unused-vars": ["error", { args: "after-used", caughtErrors: "none" }],
      eqeqeq: ["error", "always"],
      "no-var": "error",
      "prefer-const": "error",
    },
  },
  {
    files: ["web/tests/**/*.mjs", "web/eslint.config.mjs"],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
  },
];
