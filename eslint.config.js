// ESLint's flat config for the pages' JavaScript: static/usermetrics/js, ES modules that run in
// the browser as served (no bundler), under a strict CSP. `npm run lint` (scripts/dev.py test runs it).
import js from "@eslint/js";
import globals from "globals";

export default [
  // Vendored front-end files are kept as their authors ship them: never linted, never changed.
  { ignores: ["static/usermetrics/vendor/**", "tests/support/vendor/**"] },
  js.configs.recommended,
  {
    files: ["static/usermetrics/js/**/*.js"],
    languageOptions: {
      sourceType: "module",
      globals: {
        ...globals.browser,
        uPlot: "readonly", // uPlot's classic script (vendor/uplot) defines it before the modules run
      },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      "no-var": "error",
      "prefer-const": "error",
    },
  },
];
