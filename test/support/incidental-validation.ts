/**
 * Jest runs this before every test file (`setupFiles` in jest.config.js): aws-cdk-lib's built-in template
 * validation is off for the file's synths, unless a test asks for it (`validate()` in test/fixtures/validation.ts).
 *
 * Why: the validation compiles a 9 MB WebAssembly module once per test file (about 4 s of CPU, jest gives every file
 * its own module registry) and costs about 0.3 s per synth; it was about half the CPU of the construct tests, and it
 * cannot fail them: outside an app that sets `@aws-cdk/core:validateAgainstDefaultRules` it downgrades every error to
 * a warning that no test reads. What it checks is asserted where it is asked for: `validate()` (the example app, the
 * rotating app in and out of a VPC, every function's runtime: no finding at all), the example app's `cdk synth`
 * (cdk.json turns its errors on), the fresh clone of test/package.test.ts and test/integ.
 *
 * The switch is the documented one (`CDK_VALIDATION=false`), set as a non-enumerable property of the file's
 * `process.env`: aws-cdk-lib reads it, while `{ ...process.env }`, what the tests hand to the `cdk synth` and
 * `npm` they start, leaves it out, so that those still validate.
 */
Object.defineProperty(process.env, 'CDK_VALIDATION', {
  value: 'false',
  writable: true,
  configurable: true,
  enumerable: false,
});
