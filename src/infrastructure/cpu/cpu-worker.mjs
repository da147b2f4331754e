// Boots the TypeScript worker entry under tsx inside a worker thread.
import { register } from "tsx/esm/api"

register()
await import("./CpuWorker.ts")
