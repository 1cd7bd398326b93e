// The resolve hook `coreRedirect.ts` registers on Node versions without in-thread hooks: run by
// Node's module loader thread, it sends `@tether/core` to the runtime bundle's core entry.
let coreUrl: string | undefined;

export function initialize(data: { coreUrl: string }): void {
  coreUrl = data.coreUrl;
}

export async function resolve(specifier: string, context: object, next: (specifier: string, context: object) => Promise<object>): Promise<object> {
  if (specifier === '@tether/core' && coreUrl !== undefined) return { url: coreUrl, format: 'module', shortCircuit: true };
  return next(specifier, context);
}
