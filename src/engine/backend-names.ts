/** The engines a run may ask for, apart from the code that starts them (reading a config must not load tfjs). */
export const BACKENDS = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendRequest = (typeof BACKENDS)[number];
