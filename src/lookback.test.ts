import { validateLookback } from './lookback';

describe('validateLookback', () => {
  it.each(['', '30d', '1d', '365d', '12h', '1h30m', '8760h', '$lookback'])('accepts %p', (value) => {
    expect(validateLookback(value)).toBeUndefined();
  });

  it.each([
    ['366d', '366d is too long: at most 365d'],
    ['8761h', '8761h is too long: at most 365d'],
    ['0d', 'The lookback must be longer than zero'],
    ['-1h', 'The lookback must be longer than zero'],
    ['30 days', '"30 days" is not a lookback: use days such as 30d, or a Go duration such as 12h'],
    ['1w', '"1w" is not a lookback: use days such as 30d, or a Go duration such as 12h'],
    ['1.5d', '"1.5d" is not a lookback: use days such as 30d, or a Go duration such as 12h'],
  ])('refuses %p', (value, message) => {
    expect(validateLookback(value)).toBe(message);
  });
});
