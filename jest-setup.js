// Jest setup provided by Grafana scaffolding
import './.config/jest-setup';

// Combobox sizes its menu with canvas text measurement, which jsdom lacks.
HTMLCanvasElement.prototype.getContext = () => ({
  font: '',
  measureText: (text) => ({ width: String(text).length * 8 }),
});

// Grafana's scroll containers watch their edges; jsdom has no IntersectionObserver.
class NoopIntersectionObserver {
  observe() {}
  unobserve() {}
  disconnect() {}
  takeRecords() {
    return [];
  }
}
Object.assign(global, { IntersectionObserver: NoopIntersectionObserver });

// findBy… and waitFor give up after 1 s by default: too short for Grafana's components on a
// busy two-core machine.
import { configure } from '@testing-library/react';
configure({ asyncUtilTimeout: 5000 });
