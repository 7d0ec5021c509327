// See moduleNameMapper in jest.config.js: content-disposition 1.x (CommonJS) under both its own
// export (Express) and 3.x's `create` (@fastify/static).
const contentDisposition = require('content-disposition/index.js');

module.exports = contentDisposition;
module.exports.create = contentDisposition;
