// Test helpers for pages served by tether: headless Chromium from the system's package.
export { CHROMIUM, CHROMIUM_FLAGS, launchChromium, type Browser } from './chromium.js';
export { fillExecutions, writeBigLog, timePages, type PageTimes } from './scale.js';
