// One modal dialog for the actions that need a reason or a confirmation (reject, suspend,
// deregister). `ask()` opens it and resolves with the reason typed (maybe '') or null on cancel.

import { useEffect, useRef, useState } from 'preact/hooks';

export interface Ask {
  title: string;
  /** Text under the title (rendered as text). */
  detail?: string;
  confirmLabel: string;
  /** Show the reason box. */
  reason?: boolean;
  danger?: boolean;
}

interface Open extends Ask {
  resolve: (reason: string | null) => void;
}

let openDialog: ((d: Open) => void) | null = null;

export function ask(a: Ask): Promise<string | null> {
  return new Promise((resolve) => {
    if (!openDialog) return resolve(null);
    openDialog({ ...a, resolve });
  });
}

export function DialogHost() {
  const [open, setOpen] = useState<Open | null>(null);
  const [reason, setReason] = useState('');
  const box = useRef<HTMLTextAreaElement>(null);
  const confirm = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    openDialog = (d) => {
      setReason('');
      setOpen(d);
    };
    return () => {
      openDialog = null;
    };
  }, []);
  useEffect(() => {
    if (open) (box.current ?? confirm.current)?.focus();
  }, [open]);
  if (!open) return null;
  const close = (value: string | null) => {
    setOpen(null);
    open.resolve(value);
  };
  const onKey = (e: KeyboardEvent) => {
    if (e.key === 'Escape') close(null);
  };
  return (
    <div class="dialog-backdrop">
      <div
        class="dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby="dialog-title"
        data-testid="action-dialog"
        onKeyDown={onKey}
      >
        <h2 id="dialog-title">{open.title}</h2>
        {open.detail && <p class="dialog-detail">{open.detail}</p>}
        {open.reason && (
          <label class="field">
            <span>Reason</span>
            <textarea
              ref={box}
              rows={3}
              maxLength={2000}
              data-testid="action-reason"
              value={reason}
              onInput={(e) => setReason(e.currentTarget.value)}
            />
          </label>
        )}
        <div class="dialog-actions">
          <button type="button" data-testid="action-cancel" onClick={() => close(null)}>
            Cancel
          </button>
          <button
            type="button"
            ref={confirm}
            class={open.danger ? 'danger' : 'primary'}
            data-testid="action-confirm"
            onClick={() => close(reason.trim())}
          >
            {open.confirmLabel}
          </button>
        </div>
      </div>
    </div>
  );
}
