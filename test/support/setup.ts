/** Runs in every test file (vitest `setupFiles`): its scratch directories go when it ends. */
import { afterAll } from "vitest"
import { removeScratchDirs } from "./Scratch.js"

afterAll(removeScratchDirs)
