import { useCallback, useEffect, useRef } from 'react';

export const RUN_QUERY_DEBOUNCE_MS = 500;

/** Runs the query once edits pause, and never after the editor is gone. */
export function useDebouncedRun(run: () => void, delayMs = RUN_QUERY_DEBOUNCE_MS): () => void {
  const timer = useRef<ReturnType<typeof setTimeout>>();
  const latestRun = useRef(run);

  useEffect(() => {
    latestRun.current = run;
  }, [run]);

  useEffect(
    () => () => {
      if (timer.current !== undefined) {
        clearTimeout(timer.current);
      }
    },
    []
  );

  return useCallback(() => {
    if (timer.current !== undefined) {
      clearTimeout(timer.current);
    }
    timer.current = setTimeout(() => {
      timer.current = undefined;
      latestRun.current();
    }, delayMs);
  }, [delayMs]);
}
