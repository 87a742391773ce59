import { createRequire } from 'node:module'
import { NativeBindingError } from '../errors.js'

const require = createRequire(import.meta.url)

export type * as UWS from 'uWebSockets.js'
type UwsModule = typeof import('uWebSockets.js')

/**
 * Loads uWebSockets.js and proves the native binding is the one in use.
 * The mirror package silently falls back to a slow pure-JS server when its
 * binary fails to load (or when UWS_USE_FALLBACK is set); Hermes refuses to
 * run on it rather than be quietly tens of times slower.
 */
export function loadNativeUws (): UwsModule {
  const uws = require('uWebSockets.js') as UwsModule
  if (nativeBindingPath() === undefined) throw new NativeBindingError('no uws_*.node addon was loaded')
  if (!Function.prototype.toString.call(uws.App).includes('[native code]')) {
    throw new NativeBindingError('uWS.App is a JavaScript function')
  }
  return uws
}

/** The path of the loaded native addon (for the start-up log and the test that proves it). */
export function nativeBindingPath (): string | undefined {
  return Object.keys(require.cache).find((path) => /uws_[^/\\]+\.node$/.test(path))
}
