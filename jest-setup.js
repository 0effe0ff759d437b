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
