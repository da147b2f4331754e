#!/usr/bin/env node
// `npx loom ...`: boots the TypeScript entry under tsx (the package ships its sources).
import { register } from "tsx/esm/api"

register()
await import("../src/main.ts")
