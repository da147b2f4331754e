// Boots the TypeScript test worker under tsx inside a worker thread.
import { register } from "tsx/esm/api"

register()
await import("./TestWorker.ts")
