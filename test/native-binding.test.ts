// uWebSockets.js must run on its native binding; the package's silent JS fallback is refused.
import t from 'tap'
import { loadNativeUws, nativeBindingPath } from '../src/http/uws.js'
import { spawnHermes } from './helpers/process.js'

t.test('the native uws addon is the one loaded', async (t) => {
  const uws = loadNativeUws()
  t.match(nativeBindingPath(), /uws_linux_x64_\d+\.node$|uws_[a-z0-9]+_[a-z0-9]+_\d+\.node$/)
  t.match(Function.prototype.toString.call(uws.App), /\[native code\]/)
})

t.test('Hermes refuses to start on the JS fallback (UWS_USE_FALLBACK=1) with a clear error', async (t) => {
  const run = spawnHermes(t, [], { UWS_USE_FALLBACK: '1', DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' })
  const { code } = await run.exited
  t.equal(code, 1)
  t.match(run.stderr(), /HERMES_ERR_UWS_NATIVE: uWebSockets.js native binding is not in use/)
})
