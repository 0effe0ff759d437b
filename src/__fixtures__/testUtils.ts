import { DataSourceInstanceSettings, DataSourcePluginMeta, ScopedVars, TypedVariableModel } from '@grafana/data';
import { TemplateSrv } from '@grafana/runtime';

import { WizOptions } from '../types';

/** Freezes an object and everything in it, so that a test fails when code mutates its input. */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as Record<string, unknown>)) {
      deepFreeze(child);
    }
  }
  return value;
}

export function instanceSettings(jsonData: WizOptions = {}): DataSourceInstanceSettings<WizOptions> {
  return {
    uid: 'wiz-test',
    type: 'seed-wizauditlogs-datasource',
    name: 'Wiz Audit Logs',
    access: 'proxy',
    readOnly: false,
    jsonData,
    meta: { id: 'seed-wizauditlogs-datasource' } as DataSourcePluginMeta,
  };
}

/**
 * A template service with fixed variables: `$name`, `${name}` and `${name:fmt}` are replaced;
 * multi-value variables hold arrays, formatted by the caller's format function or joined by commas.
 */
export function fakeTemplateSrv(variables: Record<string, string | string[]>): TemplateSrv {
  const replace = (target?: string, scopedVars?: ScopedVars, format?: string | Function): string => {
    if (!target) {
      return target ?? '';
    }
    return target.replace(/\$(\w+)|\$\{(\w+)(?::\w+)?\}/g, (match, plain?: string, braced?: string) => {
      const name = (plain ?? braced)!;
      const scoped = scopedVars?.[name]?.value;
      const value = scoped !== undefined ? (scoped as string | string[]) : variables[name];
      if (value === undefined) {
        return match;
      }
      if (typeof format === 'function') {
        return format(value);
      }
      return Array.isArray(value) ? value.join(',') : value;
    });
  };
  return {
    replace,
    getVariables: () => Object.keys(variables).map((name) => ({ name }) as TypedVariableModel),
    containsTemplate: (target?: string) => /\$\w+|\$\{\w+/.test(target ?? ''),
    updateTimeRange: () => {},
  };
}
