/** IP address and CIDR parsing for the source IP filter (the same forms Go's net package takes). */

const IPV4_PART = /^(0|[1-9][0-9]{0,2})$/;

function parseIPv4(s: string): number[] | undefined {
  const parts = s.split('.');
  if (parts.length !== 4 || !parts.every((p) => IPV4_PART.test(p))) {
    return undefined;
  }
  const bytes = parts.map(Number);
  return bytes.every((b) => b <= 255) ? bytes : undefined;
}

function parseIPv6(s: string): number[] | undefined {
  const halves = s.split('::');
  if (halves.length > 2) {
    return undefined;
  }
  const groups = (half: string): number[] | undefined => {
    if (half === '') {
      return [];
    }
    const out: number[] = [];
    const pieces = half.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIPv4(piece);
        if (!v4) {
          return undefined;
        }
        out.push(v4[0], v4[1], v4[2], v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
        const n = parseInt(piece, 16);
        out.push(n >> 8, n & 0xff);
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) {
    return undefined;
  }
  if (halves.length === 1) {
    return head.length === 16 ? head : undefined;
  }
  const missing = 16 - head.length - tail.length;
  return missing >= 2 ? [...head, ...new Array(missing).fill(0), ...tail] : undefined;
}

/** The address's bytes (4 for IPv4, 16 for IPv6), or undefined when it is not an IP address. */
export function parseIP(s: string): number[] | undefined {
  return s.includes(':') ? parseIPv6(s) : parseIPv4(s);
}

interface Cidr {
  bytes: number[];
  bits: number;
}

export function parseCIDR(s: string): Cidr | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) {
    return undefined;
  }
  const bytes = parseIP(s.slice(0, slash));
  const prefix = s.slice(slash + 1);
  if (!bytes || !/^(0|[1-9][0-9]{0,2})$/.test(prefix)) {
    return undefined;
  }
  const bits = Number(prefix);
  return bits <= bytes.length * 8 ? { bytes, bits } : undefined;
}

export function isIPOrCIDR(s: string): boolean {
  return parseIP(s) !== undefined || parseCIDR(s) !== undefined;
}

/** Whether the address `ip` falls in `range` (an address or a CIDR). */
export function ipInRange(ip: string, range: string): boolean {
  const addr = parseIP(ip);
  if (!addr) {
    return false;
  }
  const cidr = parseCIDR(range) ?? (parseIP(range) ? { bytes: parseIP(range)!, bits: addr.length * 8 } : undefined);
  if (!cidr || cidr.bytes.length !== addr.length) {
    return false;
  }
  for (let bit = 0; bit < cidr.bits; bit++) {
    const byte = bit >> 3;
    const mask = 0x80 >> (bit & 7);
    if ((addr[byte] & mask) !== (cidr.bytes[byte] & mask)) {
      return false;
    }
  }
  return true;
}
