// The sign-in form, shown instead of every page when the control plane's API asks for a token (--api-token-file).
import { useState } from 'preact/hooks';
import { ApiFailure, signIn } from '../api.ts';

export function SignInPage() {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const onSubmit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await signIn(token.trim());
      // The cookie is set: start over, so that the event stream and every page load with it.
      location.reload();
    } catch (failure) {
      setError(failure instanceof ApiFailure ? failure.status.message : String(failure));
      setBusy(false);
    }
  };
  return (
    <div class="page sign-in-page">
      <div class="toolbar">
        <h1>Sign in</h1>
        <span class="muted small">This control plane asks for one of its API tokens (its --api-token-file).</span>
      </div>
      <form class="card form-grid" onSubmit={onSubmit} aria-label="Sign in">
        <label class="wide-field">
          <span class="label">API token</span>
          <input type="password" name="token" autocomplete="current-password" required value={token} onInput={(e) => setToken((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <div class="buttons">
          <button type="submit" class="primary" disabled={busy || token.trim() === ''}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </div>
      </form>
      {error && (
        <p class="notice bad" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
