// Placeholder until the local stack lands: see dev/localStack.ts.
export default async function setup(): Promise<() => Promise<void>> {
  return async () => {};
}
